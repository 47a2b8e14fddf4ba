# The agent: a Cloud Functions (2nd gen) CloudEvent function, `handle_turn` in
# services/agent_fn/main.py, reached by the turns subscription's push requests.
#
# It is deployed without an event_trigger (Eventarc's managed subscription cannot keep
# per-session order); the messaging module pushes to it instead. Without a trigger the platform
# would build it as an HTTP function, so the build is told its signature type
# (GOOGLE_FUNCTION_SIGNATURE_TYPE, which every functions-framework buildpack honours); the
# @functions_framework.cloud_event decorator says the same at run time.

locals {
  use_vertex = var.model_backend == "vertex"
  use_key    = var.model_backend == "gemini_api_key"

  agent_project_roles = toset(concat(
    [
      "roles/datastore.user",    # the session log: transactions on sessions, events, turns
      "roles/logging.logWriter", # structured logs
      "roles/cloudtrace.agent",  # spans of the turns it runs
    ],
    local.use_vertex ? ["roles/aiplatform.user"] : [], # Gemini through Vertex AI
  ))

  environment = merge(var.extra_env, {
    DEPLOYCHAT_PROJECT_ID            = var.project_id
    DEPLOYCHAT_FIRESTORE_DATABASE    = var.firestore_database
    DEPLOYCHAT_LOG_FORMAT            = "json"
    DEPLOYCHAT_LOG_LEVEL             = var.log_level
    DEPLOYCHAT_SESSION_TTL_DAYS      = tostring(var.session_ttl_days)
    DEPLOYCHAT_MODEL                 = var.model
    DEPLOYCHAT_USE_VERTEX            = local.use_vertex ? "true" : "false"
    DEPLOYCHAT_VERTEX_LOCATION       = var.vertex_location
    DEPLOYCHAT_MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
    DEPLOYCHAT_TURN_LEASE_S          = tostring(var.turn_lease_seconds)
    # On Google Cloud, sources are git URLs and apps go to Cloud Run, never beside the agent.
    DEPLOYCHAT_LOCAL_SOURCES  = "false"
    DEPLOYCHAT_LOCAL_DEPLOY   = "false"
    DEPLOYCHAT_DEPLOY_PROJECT = var.project_id
    DEPLOYCHAT_DEPLOY_REGION  = var.region
    # Set by the platform anyway; stated here so plans show no perpetual diff.
    LOG_EXECUTION_ID = "true"
  })
}

# ------------------------------------------------------------------ identities

resource "google_service_account" "agent" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-agent"
  display_name = "deploychat ${var.environment}: agent function"
  description  = "Runs the agent function: writes the session log in Firestore and calls the model."
}

resource "google_project_iam_member" "agent" {
  for_each = local.agent_project_roles

  project = var.project_id
  role    = each.value
  member  = google_service_account.agent.member
}

# Builds the function's image from its source (Cloud Build, on the function's behalf).
resource "google_service_account" "builder" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-fn-build"
  display_name = "deploychat ${var.environment}: agent function builds"
  description  = "Cloud Build identity for building the agent function from its source archive."
}

resource "google_project_iam_member" "builder_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.builder.member
}

# Cloud Functions copies the source into its own staging bucket (gcf-v2-sources-*), which it
# creates itself; the build reads it from there.
resource "google_project_iam_member" "builder_sources" {
  project = var.project_id
  role    = "roles/storage.objectAdmin"
  member  = google_service_account.builder.member
}

resource "google_storage_bucket_iam_member" "builder_source_reader" {
  bucket = var.source_bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.builder.member
}

resource "google_artifact_registry_repository_iam_member" "builder_writer" {
  project    = var.project_id
  location   = var.region
  repository = var.docker_repository_name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.builder.member
}

# ------------------------------------------------------------------ model credentials

# Only the secret's container is managed here: its value is added out of band
# (`gcloud secrets versions add`, README.md, Deploy to Google Cloud) and never passes through Terraform.
resource "google_secret_manager_secret" "gemini_api_key" {
  count = local.use_key ? 1 : 0

  project   = var.project_id
  secret_id = "${var.name_prefix}-gemini-api-key"
  labels    = var.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_iam_member" "gemini_api_key" {
  count = local.use_key ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.gemini_api_key[0].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.agent.member
}

# ------------------------------------------------------------------ the function

resource "google_storage_bucket_object" "source" {
  count = var.enabled ? 1 : 0

  # Content-addressed: the same source is one object, and a new one redeploys the function.
  name   = "agent-fn/${filemd5(var.source_zip)}.zip"
  bucket = var.source_bucket
  source = var.source_zip
}

resource "google_cloudfunctions2_function" "agent" {
  count = var.enabled ? 1 : 0

  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-agent"
  description = "deploychat agent: one Pub/Sub push request is one chat turn."
  labels      = var.labels

  build_config {
    runtime         = var.runtime
    entry_point     = "handle_turn"
    service_account = google_service_account.builder.id
    # The function's image goes to the project's own repository (cleanup policies apply).
    docker_repository = var.docker_repository_id
    environment_variables = {
      GOOGLE_FUNCTION_SIGNATURE_TYPE = "cloudevent"
    }
    source {
      storage_source {
        bucket = var.source_bucket
        object = google_storage_bucket_object.source[0].name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.agent.email
    timeout_seconds                  = var.timeout_seconds
    available_memory                 = var.memory
    available_cpu                    = var.cpu
    min_instance_count               = var.min_instances
    max_instance_count               = var.max_instances
    max_instance_request_concurrency = var.concurrency
    # Only the turns subscription (Pub/Sub in this project) reaches it, and only with an OIDC
    # token of the push identity (no allUsers invoker).
    ingress_settings               = var.ingress_settings
    all_traffic_on_latest_revision = true
    environment_variables          = local.environment

    dynamic "secret_environment_variables" {
      for_each = local.use_key ? [1] : []
      content {
        key        = "GEMINI_API_KEY"
        project_id = var.project_id
        secret     = google_secret_manager_secret.gemini_api_key[0].secret_id
        version    = "latest"
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.turn_lease_seconds > var.timeout_seconds
      error_message = "turn_lease_seconds must exceed timeout_seconds: a running turn must hold its session until the platform has stopped it."
    }
    precondition {
      condition     = var.timeout_seconds < var.push_ack_deadline_seconds
      error_message = "timeout_seconds must be shorter than the subscription's ack deadline (the push request timeout)."
    }
  }

  depends_on = [
    google_project_iam_member.agent,
    google_project_iam_member.builder_logs,
    google_project_iam_member.builder_sources,
    google_storage_bucket_iam_member.builder_source_reader,
    google_artifact_registry_repository_iam_member.builder_writer,
    google_secret_manager_secret_iam_member.gemini_api_key,
  ]
}
