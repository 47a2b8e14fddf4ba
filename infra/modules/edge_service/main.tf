# The edge: the chat page and the WebSocket on Cloud Run (services/ws_edge, gunicorn + gevent).
#
# A socket lives for up to an hour on one instance and is served by a single long request, so:
# request timeout 3600 s; up to 1000 concurrent requests (sockets) per instance; CPU kept
# between requests (cpu_idle = false) because an open socket is idle as far as Cloud Run can
# tell while its feed and heartbeats still need the CPU; session affinity, so a reconnecting
# browser tends to find the instance already watching its session.

locals {
  edge_project_roles = toset([
    "roles/datastore.user",    # reads the session log; creates sessions, writes cancel flags
    "roles/logging.logWriter", # structured logs
    "roles/cloudtrace.agent",  # spans of the chats it accepts
  ])

  environment = merge(var.extra_env, {
    DEPLOYCHAT_PROJECT_ID         = var.project_id
    DEPLOYCHAT_FIRESTORE_DATABASE = var.firestore_database
    DEPLOYCHAT_LOG_FORMAT         = "json"
    DEPLOYCHAT_LOG_LEVEL          = var.log_level
    DEPLOYCHAT_SESSION_TTL_DAYS   = tostring(var.session_ttl_days)
    DEPLOYCHAT_TURNS_TOPIC        = var.turns_topic
    DEPLOYCHAT_MAX_FRAME_BYTES    = tostring(var.max_frame_bytes)
    DEPLOYCHAT_ALLOWED_ORIGINS    = jsonencode(var.allowed_origins)
    DEPLOYCHAT_PUBLISH_TIMEOUT_S  = tostring(var.publish_timeout_seconds)
  })
}

resource "google_service_account" "edge" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-edge"
  display_name = "deploychat ${var.environment}: edge service"
  description  = "Runs the edge: publishes chat turns and reads the session log."
}

resource "google_project_iam_member" "edge" {
  for_each = local.edge_project_roles

  project = var.project_id
  role    = each.value
  member  = google_service_account.edge.member
}

# Publisher on the turns topic only, not on the project.
resource "google_pubsub_topic_iam_member" "edge_publisher" {
  project = var.project_id
  topic   = var.turns_topic
  role    = "roles/pubsub.publisher"
  member  = google_service_account.edge.member
}

# The optional shared token clients must present (DEPLOYCHAT_AUTH_TOKEN) stays in Secret Manager.
resource "google_secret_manager_secret_iam_member" "auth_token" {
  count = var.auth_token_secret_id == null ? 0 : 1

  project   = var.project_id
  secret_id = var.auth_token_secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.edge.member
}

resource "google_cloud_run_v2_service" "edge" {
  count = var.enabled ? 1 : 0

  project             = var.project_id
  location            = var.region
  name                = "${var.name_prefix}-edge"
  description         = "deploychat edge: chat page and WebSocket."
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection
  labels              = var.labels

  template {
    service_account                  = google_service_account.edge.email
    timeout                          = "${var.request_timeout_seconds}s"
    max_instance_request_concurrency = var.concurrency
    session_affinity                 = true
    execution_environment            = "EXECUTION_ENVIRONMENT_GEN2"
    labels                           = var.labels

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      name  = "edge"
      image = var.image

      # Cloud Run sets PORT to this; gunicorn.conf.py binds to PORT.
      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle          = false
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.environment
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = var.auth_token_secret_id == null ? [] : [var.auth_token_secret_id]
        content {
          name = "DEPLOYCHAT_AUTH_TOKEN"
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      startup_probe {
        initial_delay_seconds = 0
        period_seconds        = 2
        timeout_seconds       = 2
        failure_threshold     = 30
        http_get {
          path = "/healthz"
        }
      }

      # A wedged worker is replaced; thresholds are loose because a restart drops every socket.
      liveness_probe {
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
        http_get {
          path = "/healthz"
        }
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  depends_on = [
    google_project_iam_member.edge,
    google_pubsub_topic_iam_member.edge_publisher,
    google_secret_manager_secret_iam_member.auth_token,
  ]
}

# The chat is a public web page: anyone may open the socket; the edge itself checks the
# Origin (DEPLOYCHAT_ALLOWED_ORIGINS) and, if configured, a token (DEPLOYCHAT_AUTH_TOKEN).
resource "google_cloud_run_v2_service_iam_member" "public" {
  #checkov:skip=CKV_GCP_102:The edge serves a public chat page and WebSocket; access control is the Origin check and the optional token in the app.
  count = var.enabled && var.public ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.edge[0].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
