# Where built things live: the Docker repository for the edge image (and the function's image,
# which Cloud Functions builds), and the bucket holding the function's source archives.

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption is enough for images built from a public repository; a customer-managed key adds cost and a key to rotate for no gain here.
  project       = var.project_id
  location      = var.region
  repository_id = var.repository_id
  description   = "deploychat images (${var.environment})"
  format        = "DOCKER"
  labels        = var.labels

  cleanup_policy_dry_run = false

  # The newest images stay (rollback targets); older and untagged ones are removed.
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.keep_image_versions
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "${var.image_max_age_days * 86400}s"
    }
  }
}

resource "google_storage_bucket" "function_source" {
  #checkov:skip=CKV_GCP_62:Access logs of a bucket holding only source archives add cost and no signal; Cloud Audit Logs record who changed it.
  project                     = var.project_id
  name                        = var.source_bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = var.labels

  versioning {
    enabled = true
  }

  # Archives are content-addressed; old ones are only rollback targets.
  lifecycle_rule {
    condition {
      age = var.source_max_age_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      with_state         = "ARCHIVED"
      num_newer_versions = 1
    }
    action {
      type = "Delete"
    }
  }
}
