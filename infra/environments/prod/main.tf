# The prod environment: one edge instance always up, protected data.

module "deploychat" {
  source = "../../modules/stack"

  project_id   = var.project_id
  region       = var.region
  environment  = "prod"
  state_bucket = var.state_bucket

  edge_image          = var.edge_image
  function_source_zip = var.function_source_zip

  firestore_database               = var.firestore_database
  firestore_location               = var.firestore_location
  firestore_point_in_time_recovery = true
  firestore_delete_protection      = true
  deletion_protection              = true
  force_destroy                    = false
  session_ttl_days                 = 30
  log_level                        = "INFO"

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
