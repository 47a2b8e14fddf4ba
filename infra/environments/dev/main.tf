# The dev environment: scales to zero, easy to tear down.

module "deploychat" {
  source = "../../modules/stack"

  project_id   = var.project_id
  region       = var.region
  environment  = "dev"
  state_bucket = var.state_bucket

  edge_image          = var.edge_image
  function_source_zip = var.function_source_zip

  firestore_database               = var.firestore_database
  firestore_location               = var.firestore_location
  firestore_point_in_time_recovery = false
  firestore_delete_protection      = false
  deletion_protection              = false
  force_destroy                    = true
  session_ttl_days                 = 7
  log_level                        = "DEBUG"

  model_backend   = var.model_backend
  model           = var.model
  vertex_location = var.vertex_location

  allowed_origins      = var.allowed_origins
  auth_token_secret_id = var.auth_token_secret_id
  edge_public          = var.edge_public

  edge_min_instances     = var.edge_min_instances
  edge_max_instances     = var.edge_max_instances
  function_max_instances = var.function_max_instances
}
