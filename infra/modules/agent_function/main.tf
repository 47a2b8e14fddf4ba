# The agent: Cloud Functions (2nd gen) built from one source archive (scripts/stage_function.py),
# one function per entry point of services/agent_fn/main.py:
#
#   agent         handle_turn         CloudEvent  the turns subscription pushes one turn per request
#   build-events  handle_build_event  CloudEvent  the cloud-builds subscription pushes Cloud Build's
#                                                 notifications (deployments outlive a turn)
#   sweeper       sweep_turns         HTTP        Cloud Scheduler calls it every minute (stuck turns)
#
# They are deployed without an event_trigger (Eventarc's managed subscription cannot keep
# per-session order); the messaging module pushes to them instead. Without a trigger the platform
# would build a function as an HTTP function, so each build is told its signature type
# (GOOGLE_FUNCTION_SIGNATURE_TYPE, which every functions-framework buildpack honours); the
# functions_framework decorators say the same at run time. The accounts are the bootstrap
# root's (modules/accounts).

locals {
  use_vertex = var.model_backend == "vertex"
  use_key    = var.model_backend == "gemini_api_key"

  functions = {
    agent = {
      entry_point = "handle_turn"
      signature   = "cloudevent"
      description = "deploychat agent: one Pub/Sub push request is one chat turn."
      timeout     = var.timeout_seconds
      max         = var.max_instances
      concurrency = var.concurrency
    }
    build-events = {
      entry_point = "handle_build_event"
      signature   = "cloudevent"
      description = "deploychat: Cloud Build notifications become deployment events of the session."
      timeout     = 60
      max         = var.max_instances
      concurrency = var.concurrency
    }
    sweeper = {
      entry_point = "sweep_turns"
      signature   = "http"
      description = "deploychat: every minute, drives turns whose attempt died."
      timeout     = 170 # within the scheduler's attempt deadline (180 s)
      max         = 1   # one sweep at a time
      concurrency = 1
    }
  }

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
    # The sweeper publishes stuck turns to the turns topic again.
    DEPLOYCHAT_TURNS_TOPIC = var.turns_topic
    # On Google Cloud, sources are git URLs and apps go to Cloud Run, never beside the agent.
    DEPLOYCHAT_LOCAL_SOURCES  = "false"
    DEPLOYCHAT_LOCAL_DEPLOY   = "false"
    DEPLOYCHAT_DEPLOY_PROJECT = var.project_id
    DEPLOYCHAT_DEPLOY_REGION  = var.region
    # Who may deploy to Cloud Run (emails and "@domain" entries; empty: nobody).
    DEPLOYCHAT_DEPLOY_ALLOWLIST = jsonencode(var.deploy_allowlist)
    # The agent's builds of users' apps run as their own account, and the apps as another.
    DEPLOYCHAT_BUILD_SERVICE_ACCOUNT = var.app_build_service_account
    DEPLOYCHAT_APP_SERVICE_ACCOUNT   = var.app_service_account
    # Set by the platform anyway; stated here so plans show no perpetual diff.
    LOG_EXECUTION_ID = "true"
  })
}

# ------------------------------------------------------------------ the functions

resource "google_storage_bucket_object" "source" {
  # Content-addressed: the same source is one object, and a new one redeploys the functions.
  name   = "agent-fn/${filemd5(var.source_zip)}.zip"
  bucket = var.source_bucket
  source = var.source_zip
}

resource "google_cloudfunctions2_function" "this" {
  for_each = local.functions

  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-${each.key}"
  description = each.value.description
  labels      = var.labels

  build_config {
    runtime         = var.runtime
    entry_point     = each.value.entry_point
    service_account = "projects/${var.project_id}/serviceAccounts/${var.builder_service_account}"
    # The function's image goes to the project's own repository (cleanup policies apply).
    docker_repository = var.docker_repository_id
    environment_variables = {
      GOOGLE_FUNCTION_SIGNATURE_TYPE = each.value.signature
    }
    source {
      storage_source {
        bucket = var.source_bucket
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = var.agent_service_account
    timeout_seconds                  = each.value.timeout
    available_memory                 = var.memory
    available_cpu                    = var.cpu
    min_instance_count               = each.key == "agent" ? var.min_instances : 0
    max_instance_count               = each.value.max
    max_instance_request_concurrency = each.value.concurrency
    # Only this project's Pub/Sub and Cloud Scheduler reach them, and only with an OIDC token
    # of an account that holds run.invoker on that one service (no allUsers invoker).
    ingress_settings               = var.ingress_settings
    all_traffic_on_latest_revision = true
    environment_variables          = local.environment

    dynamic "secret_environment_variables" {
      for_each = local.use_key ? [var.gemini_api_key_secret_id] : []
      content {
        key        = "GEMINI_API_KEY"
        project_id = var.project_id
        secret     = secret_environment_variables.value
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
    precondition {
      condition     = !local.use_key || var.gemini_api_key_secret_id != null
      error_message = "model_backend gemini_api_key needs gemini_api_key_secret_id (the bootstrap root's secrets output)."
    }
  }
}
