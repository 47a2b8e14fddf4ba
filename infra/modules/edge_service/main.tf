# The edge: the chat page and the WebSocket on Cloud Run (services/ws_edge, gunicorn + gevent).
#
# A socket lives for up to an hour on one instance and is served by a single long request, so:
# request timeout 3600 s; up to 1000 concurrent requests (sockets) per instance; CPU kept
# between requests (cpu_idle = false) because an open socket is idle as far as Cloud Run can
# tell while its feed and heartbeats still need the CPU; session affinity, so a reconnecting
# browser tends to find the instance already watching its session.

locals {
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
    DEPLOYCHAT_AGENT_MODEL        = var.agent_model
    # Sign-in with Identity Platform in every environment (`none` is for a local stack only,
    # and the edge refuses it on Cloud Run). The page signs in with this web configuration:
    # the browser key is public by design (restricted to the sign-in APIs).
    DEPLOYCHAT_AUTH_MODE            = "firebase"
    DEPLOYCHAT_FIREBASE_API_KEY     = var.sign_in_browser_key
    DEPLOYCHAT_FIREBASE_AUTH_DOMAIN = var.firebase_auth_domain
  })
}

# Publisher on the turns topic only, not on the project (the account and its project roles are
# the bootstrap root's: modules/accounts).
resource "google_pubsub_topic_iam_member" "edge_publisher" {
  project = var.project_id
  topic   = var.turns_topic
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.service_account}"
}

resource "google_cloud_run_v2_service" "edge" {
  project             = var.project_id
  location            = var.region
  name                = "${var.name_prefix}-edge"
  description         = "deploychat edge: chat page and WebSocket."
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection
  labels              = var.labels

  template {
    service_account                  = var.service_account
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

  depends_on = [google_pubsub_topic_iam_member.edge_publisher]
}

# The chat is a public web page: anyone may load it and open the socket; the edge itself
# checks the Origin (DEPLOYCHAT_ALLOWED_ORIGINS) and the Identity Platform ID token in `init`.
resource "google_cloud_run_v2_service_iam_member" "public" {
  #checkov:skip=CKV_GCP_102:The edge serves a public chat page and WebSocket; access control is the Origin check and the sign-in token in the app.
  count = var.public ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.edge.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
