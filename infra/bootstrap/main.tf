# One-time set-up of an environment, applied by a project owner (README.md, Deploy to Google
# Cloud, step 1): APIs, service identities, the state bucket, the image repositories and
# buckets, the Firestore database, every service account and every project role. Nothing here
# changes from one release to the next; the app root (infra/environments/<env>) is what Cloud
# Build applies with each new image and source, as the deployer made here.

locals {
  name_prefix = "deploychat-${var.environment}"
  labels = {
    app         = "deploychat"
    environment = var.environment
  }
}

data "google_project" "this" {
  project_id = var.project_id
}

module "apis" {
  source     = "../modules/apis"
  project_id = var.project_id
}

# Service agents exist once their API is enabled, but not always by the time the next request
# grants them a role; asking for the identity waits until it exists (no race on first apply).
# Pub/Sub's is the one granted roles here (token creator on the push account) and in the app
# root (dead-lettering).
resource "google_project_service_identity" "this" {
  provider = google-beta
  for_each = toset(["pubsub.googleapis.com"])

  project = var.project_id
  service = each.value

  depends_on = [module.apis]
}

resource "google_storage_bucket" "state" {
  #checkov:skip=CKV_GCP_62:Access logs of the state bucket add cost; Cloud Audit Logs record who read or changed it.
  project                     = var.project_id
  name                        = var.state_bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = local.labels

  # Every state Terraform wrote stays recoverable.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      with_state         = "ARCHIVED"
      num_newer_versions = 20
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [module.apis]
}

module "registry" {
  source = "../modules/registry"

  project_id         = var.project_id
  project_number     = data.google_project.this.number
  region             = var.region
  environment        = var.environment
  repository_id      = local.name_prefix
  source_bucket_name = "${var.project_id}-${local.name_prefix}-fn-source"
  force_destroy      = var.force_destroy
  labels             = local.labels

  depends_on = [module.apis]
}

module "data" {
  source = "../modules/data"

  project_id             = var.project_id
  database_id            = var.firestore_database
  location               = var.firestore_location
  point_in_time_recovery = var.protect_data
  delete_protection      = var.protect_data

  depends_on = [module.apis]
}

module "accounts" {
  source = "../modules/accounts"

  project_id              = var.project_id
  region                  = var.region
  environment             = var.environment
  name_prefix             = local.name_prefix
  labels                  = local.labels
  use_vertex              = var.model_backend == "vertex"
  pubsub_service_agent    = google_project_service_identity.this["pubsub.googleapis.com"].email
  state_bucket            = google_storage_bucket.state.name
  function_source_bucket  = module.registry.source_bucket
  function_staging_bucket = module.registry.function_staging_bucket
  build_sources_bucket    = module.registry.build_sources_bucket
  images_repository       = module.registry.repository_name
  apps_repository         = module.registry.apps_repository_name

  depends_on = [module.apis]
}
