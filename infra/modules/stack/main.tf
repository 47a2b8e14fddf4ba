# One deploychat environment: every module wired together. The environment roots
# (infra/environments/*) only choose the sizes and settings.
#
# The services are created once their artifacts exist: the first `terraform apply` (no image,
# no source archive) lays the foundation (APIs, repository, bucket, topics, identities,
# Firestore); Cloud Build then builds the image and the function's source and applies again
# with both (README.md, Deploy to Google Cloud).

locals {
  name_prefix     = "deploychat-${var.environment}"
  deploy_edge     = var.edge_image != null
  deploy_function = var.function_source_zip != null
  labels = merge(var.labels, {
    app         = "deploychat"
    environment = var.environment
  })
}

data "google_project" "this" {
  project_id = var.project_id
}

module "apis" {
  source     = "../apis"
  project_id = var.project_id
}

module "registry" {
  source = "../registry"

  project_id         = var.project_id
  region             = var.region
  environment        = var.environment
  repository_id      = local.name_prefix
  source_bucket_name = "${var.project_id}-${local.name_prefix}-fn-source"
  force_destroy      = var.force_destroy
  labels             = local.labels

  depends_on = [module.apis]
}

module "data" {
  source = "../data"

  project_id             = var.project_id
  database_id            = var.firestore_database
  location               = var.firestore_location
  point_in_time_recovery = var.firestore_point_in_time_recovery
  delete_protection      = var.firestore_delete_protection

  depends_on = [module.apis]
}

module "agent_function" {
  source = "../agent_function"

  project_id             = var.project_id
  region                 = var.region
  environment            = var.environment
  name_prefix            = local.name_prefix
  labels                 = local.labels
  enabled                = local.deploy_function
  source_zip             = var.function_source_zip
  source_bucket          = module.registry.source_bucket
  docker_repository_id   = module.registry.repository_id
  docker_repository_name = module.registry.repository_name
  firestore_database     = module.data.database
  log_level              = var.log_level
  session_ttl_days       = var.session_ttl_days

  model_backend   = var.model_backend
  model           = var.model
  vertex_location = var.vertex_location

  timeout_seconds           = var.function_timeout_seconds
  turn_lease_seconds        = var.turn_lease_seconds
  push_ack_deadline_seconds = var.ack_deadline_seconds
  max_delivery_attempts     = var.max_delivery_attempts
  min_instances             = var.function_min_instances
  max_instances             = var.function_max_instances
  concurrency               = var.function_concurrency
  ingress_settings          = var.function_ingress_settings

  depends_on = [module.apis]
}

module "messaging" {
  source = "../messaging"

  project_id            = var.project_id
  project_number        = data.google_project.this.number
  environment           = var.environment
  name_prefix           = local.name_prefix
  labels                = local.labels
  delivery_enabled      = local.deploy_function
  function_uri          = module.agent_function.uri
  function_service_name = module.agent_function.service_name
  function_location     = var.region
  ack_deadline_seconds  = var.ack_deadline_seconds
  min_backoff_seconds   = var.min_backoff_seconds
  max_backoff_seconds   = var.max_backoff_seconds
  max_delivery_attempts = var.max_delivery_attempts

  depends_on = [module.apis]
}

module "edge_service" {
  source = "../edge_service"

  project_id           = var.project_id
  region               = var.region
  environment          = var.environment
  name_prefix          = local.name_prefix
  labels               = local.labels
  enabled              = local.deploy_edge
  image                = var.edge_image
  turns_topic          = module.messaging.turns_topic
  firestore_database   = module.data.database
  allowed_origins      = var.allowed_origins
  auth_token_secret_id = var.auth_token_secret_id
  log_level            = var.log_level
  session_ttl_days     = var.session_ttl_days
  min_instances        = var.edge_min_instances
  max_instances        = var.edge_max_instances
  concurrency          = var.edge_concurrency
  public               = var.edge_public
  deletion_protection  = var.deletion_protection

  depends_on = [module.apis]
}

module "deployer" {
  source = "../deployer"

  project_id   = var.project_id
  environment  = var.environment
  name_prefix  = local.name_prefix
  state_bucket = var.state_bucket
  runtime_service_accounts = {
    edge    = module.edge_service.service_account_name
    agent   = module.agent_function.service_account_name
    builder = module.agent_function.builder_service_account_name
    push    = module.messaging.push_service_account_name
  }

  depends_on = [module.apis]
}
