# Where built things live: the Docker repository for the edge image (and the function's image,
# which Cloud Functions builds), the repository of the users' apps the agent deploys, and the
# buckets of sources: the function's archives, Cloud Functions' staging, and <project>_cloudbuild.
# All are made once by the bootstrap root, so every account gets roles on these resources only.

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

# The users' apps the agent builds (agent/tools/cloud_run_deploy.py pushes to this repository;
# its "create if missing" build step then finds it, so the build account needs no admin role).
resource "google_artifact_registry_repository" "apps" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption is enough for images of apps built from public repositories.
  project       = var.project_id
  location      = var.region
  repository_id = var.apps_repository_id
  description   = "Apps deployed by deploychat (${var.environment})"
  format        = "DOCKER"
  labels        = var.labels

  cleanup_policy_dry_run = false

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 3
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

# The bucket `gcloud builds submit` and the agent upload build sources to (gcloud's own name for
# it); made here so that uploads and builds get roles on it rather than on all of Storage.
resource "google_storage_bucket" "build_sources" {
  #checkov:skip=CKV_GCP_62:Access logs of a bucket of build sources add cost and no signal; Cloud Audit Logs record who changed it.
  #checkov:skip=CKV_GCP_78:Build sources are uploaded afresh for every build; old versions are never read.
  project                     = var.project_id
  name                        = "${var.project_id}_cloudbuild"
  location                    = "US" # where gcloud makes it
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = var.labels

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }
}

# Cloud Functions copies each source archive into this bucket (its own name for it, which it
# makes if missing) and builds from there; made here so the build account can be given read
# access to it alone.
resource "google_storage_bucket" "function_staging" {
  #checkov:skip=CKV_GCP_62:Access logs of a staging bucket add cost and no signal.
  #checkov:skip=CKV_GCP_78:Staged copies of archives kept versioned in the source bucket.
  project                     = var.project_id
  name                        = "gcf-v2-sources-${var.project_number}-${var.region}"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy
  labels                      = var.labels
}
