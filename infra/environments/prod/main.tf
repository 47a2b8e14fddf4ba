# The prod environment: one edge instance always up, protected data.
# The one-time part of the environment is infra/bootstrap (applied with -var environment=prod).

module "deploychat" {
  source = "../../modules/stack"

  project_id  = var.project_id
  region      = var.region
  environment = "prod"

  edge_image          = var.edge_image
  function_source_zip = var.function_source_zip

  firestore_database  = var.firestore_database
  deletion_protection = true
  session_ttl_days    = 30
  log_level           = "INFO"

  model_backend   = var.model_backend
  model           = var.model
  vertex_location = var.vertex_location

  allowed_origins          = var.allowed_origins
  edge_public              = var.edge_public
  deploy_allowlist         = var.deploy_allowlist
  google_oauth_client_id   = var.google_oauth_client_id
  extra_authorized_domains = var.extra_authorized_domains

  edge_min_instances     = var.edge_min_instances
  edge_max_instances     = var.edge_max_instances
  function_max_instances = var.function_max_instances
}
