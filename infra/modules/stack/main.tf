# One deploychat environment's app: everything that changes with a release, applied by Cloud
# Build as the deployer (cloudbuild.yaml) with the image it built and the source it staged, so
# every resource is always there and a repeated apply with the same inputs changes nothing.
# What is made once (APIs, accounts, project roles, repositories, buckets, the database) is the
# bootstrap root's (infra/bootstrap); this root only refers to it by name.

locals {
  name_prefix = "deploychat-${var.environment}"
  labels = merge(var.labels, {
    app         = "deploychat"
    environment = var.environment
  })
  # The bootstrap root's accounts (modules/accounts), by their fixed names.
  accounts = {
    for name in ["edge", "agent", "fn-build", "push", "scheduler", "app-build", "app"] :
    name => "${local.name_prefix}-${name}@${var.project_id}.iam.gserviceaccount.com"
  }
  gemini_api_key_secret_id = var.model_backend == "gemini_api_key" ? "${local.name_prefix}-gemini-api-key" : null
}

data "google_project" "this" {
  project_id = var.project_id
}

module "firestore_indexes" {
  source = "../firestore_indexes"

  project_id = var.project_id
  database   = var.firestore_database
}

module "agent_function" {
  source = "../agent_function"

  project_id                = var.project_id
  region                    = var.region
  environment               = var.environment
  name_prefix               = local.name_prefix
  labels                    = local.labels
  source_zip                = var.function_source_zip
  source_bucket             = "${var.project_id}-${local.name_prefix}-fn-source"
  docker_repository_id      = "projects/${var.project_id}/locations/${var.region}/repositories/${local.name_prefix}"
  agent_service_account     = local.accounts["agent"]
  builder_service_account   = local.accounts["fn-build"]
  app_build_service_account = local.accounts["app-build"]
  app_service_account       = local.accounts["app"]
  turns_topic               = module.messaging.turns_topic
  deploy_allowlist          = var.deploy_allowlist
  firestore_database        = var.firestore_database
  log_level                 = var.log_level
  session_ttl_days          = var.session_ttl_days

  model_backend            = var.model_backend
  model                    = var.model
  vertex_location          = var.vertex_location
  gemini_api_key_secret_id = local.gemini_api_key_secret_id

  timeout_seconds           = var.function_timeout_seconds
  turn_lease_seconds        = var.turn_lease_seconds
  push_ack_deadline_seconds = var.ack_deadline_seconds
  max_delivery_attempts     = var.max_delivery_attempts
  min_instances             = var.function_min_instances
  max_instances             = var.function_max_instances
  concurrency               = var.function_concurrency
  ingress_settings          = var.function_ingress_settings
}

module "messaging" {
  source = "../messaging"

  project_id                = var.project_id
  project_number            = data.google_project.this.number
  environment               = var.environment
  name_prefix               = local.name_prefix
  labels                    = local.labels
  push_service_account      = local.accounts["push"]
  function_uri              = module.agent_function.uris["agent"]
  function_service_name     = module.agent_function.service_names["agent"]
  build_events_uri          = module.agent_function.uris["build-events"]
  build_events_service_name = module.agent_function.service_names["build-events"]
  function_location         = var.region
  ack_deadline_seconds      = var.ack_deadline_seconds
  min_backoff_seconds       = var.min_backoff_seconds
  max_backoff_seconds       = var.max_backoff_seconds
  max_delivery_attempts     = var.max_delivery_attempts
}

# The agent's sweeper publishes stuck turns again: publisher on the turns topic only.
resource "google_pubsub_topic_iam_member" "agent_publisher" {
  project = var.project_id
  topic   = module.messaging.turns_topic
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.accounts["agent"]}"
}

module "scheduler" {
  source = "../scheduler"

  project_id                = var.project_id
  region                    = var.region
  environment               = var.environment
  name_prefix               = local.name_prefix
  sweeper_uri               = module.agent_function.uris["sweeper"]
  sweeper_service_name      = module.agent_function.service_names["sweeper"]
  scheduler_service_account = local.accounts["scheduler"]
}

module "edge_service" {
  source = "../edge_service"

  project_id           = var.project_id
  region               = var.region
  environment          = var.environment
  name_prefix          = local.name_prefix
  labels               = local.labels
  image                = var.edge_image
  service_account      = local.accounts["edge"]
  turns_topic          = module.messaging.turns_topic
  firestore_database   = var.firestore_database
  allowed_origins      = var.allowed_origins
  sign_in_browser_key  = module.identity.api_key
  firebase_auth_domain = module.identity.auth_domain
  agent_model          = var.model
  log_level            = var.log_level
  session_ttl_days     = var.session_ttl_days
  min_instances        = var.edge_min_instances
  max_instances        = var.edge_max_instances
  concurrency          = var.edge_concurrency
  public               = var.edge_public
  deletion_protection  = var.deletion_protection
}

module "identity" {
  source = "../identity"

  project_id                           = var.project_id
  environment                          = var.environment
  name_prefix                          = local.name_prefix
  edge_url                             = module.edge_service.url
  extra_authorized_domains             = var.extra_authorized_domains
  google_oauth_client_id               = var.google_oauth_client_id
  google_oauth_client_secret_secret_id = "${local.name_prefix}-google-oauth-client-secret"
}
