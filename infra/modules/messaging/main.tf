# Turns travel from the edge to the agent function through Pub/Sub, in order per session.
#
# The delivery is a push subscription of our own rather than the Eventarc trigger a Cloud
# Function could be given: an Eventarc trigger's managed subscription has no message ordering,
# and per-session order is part of the protocol (README.md, Deploy to Google Cloud). The set-up mirrors what
# `make dev` builds on the emulator (devstack/stack.py: Stack.setup_pubsub).

locals {
  pubsub_agent = "serviceAccount:service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  # functions-framework turns a raw push body into a CloudEvent and takes the event's source
  # from the request path, so the topic stays in the path (as in devstack).
  push_endpoint = "${var.function_uri}/projects/${var.project_id}/topics/${google_pubsub_topic.turns.name}"
  push_member   = "serviceAccount:${var.push_service_account}"
}

resource "google_pubsub_topic" "turns" {
  #checkov:skip=CKV_GCP_83:Turns are short-lived chat messages; Google-managed encryption is enough and a customer-managed key adds a key to operate.
  project = var.project_id
  name    = "${var.name_prefix}-turns"
  labels  = var.labels
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Same data as the turns topic; Google-managed encryption is enough.
  project = var.project_id
  name    = "${var.name_prefix}-turns-dead-letter"
  labels  = var.labels
}

# Dead letters are kept for inspection rather than dropped (a topic without a subscription
# loses what is published to it).
resource "google_pubsub_subscription" "dead_letter_hold" {
  project                    = var.project_id
  name                       = "${var.name_prefix}-turns-dead-letter-hold"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  labels                     = var.labels

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub's service agent forwards undeliverable turns: it publishes to the dead-letter topic
# and acknowledges them on the delivery subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

# Pub/Sub signs the push requests with the push account (the bootstrap root's, which also lets
# Pub/Sub's agent mint its tokens): an OIDC token for the function's URL.

# The push identity may invoke the function's Cloud Run service, and nothing else.
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  project  = var.project_id
  location = var.function_location
  name     = var.function_service_name
  role     = "roles/run.invoker"
  member   = local.push_member
}

resource "google_pubsub_subscription" "to_agent" {
  project = var.project_id
  name    = "${var.name_prefix}-turns-to-agent"
  topic   = google_pubsub_topic.turns.id
  labels  = var.labels

  # Turns of one session (ordering key = session id) are delivered one at a time, in order.
  enable_message_ordering = true
  # For push this is also the request timeout: long enough for a whole turn (the function's
  # timeout is shorter, so a stuck turn fails and is retried rather than delivered twice).
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = "604800s"

  retry_policy {
    minimum_backoff = "${var.min_backoff_seconds}s"
    maximum_backoff = "${var.max_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  push_config {
    push_endpoint = local.push_endpoint
    oidc_token {
      service_account_email = var.push_service_account
      audience              = var.function_uri
    }
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invoker,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.to_agent.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

# ------------------------------------------------------------------ Cloud Build notifications

# Cloud Build publishes every build's status changes to the project's topic named `cloud-builds`
# (if it exists). The agent's deployments are builds, so their progress reaches the session
# from here, after the turn that started them has ended (handle_build_event, idempotent per
# build id and status: notifications are at-least-once and unordered).
resource "google_pubsub_topic" "cloud_builds" {
  #checkov:skip=CKV_GCP_83:Build status notifications; Google-managed encryption is enough.
  project = var.project_id
  name    = "cloud-builds" # the name Cloud Build publishes to
  labels  = var.labels
}

resource "google_cloud_run_v2_service_iam_member" "build_events_invoker" {
  project  = var.project_id
  location = var.function_location
  name     = var.build_events_service_name
  role     = "roles/run.invoker"
  member   = local.push_member
}

resource "google_pubsub_subscription" "build_events" {
  project = var.project_id
  name    = "${var.name_prefix}-cloud-builds-to-agent"
  topic   = google_pubsub_topic.cloud_builds.id
  labels  = var.labels

  # Every build of the project is notified; handle_build_event ignores those that are not a
  # deployment it stored (the pipeline's own builds among them).
  ack_deadline_seconds       = 60
  message_retention_duration = "86400s"

  retry_policy {
    minimum_backoff = "${var.min_backoff_seconds}s"
    maximum_backoff = "${var.max_backoff_seconds}s"
  }

  push_config {
    # functions-framework takes the CloudEvent's source from the path, as for the turns.
    push_endpoint = "${var.build_events_uri}/projects/${var.project_id}/topics/${google_pubsub_topic.cloud_builds.name}"
    oidc_token {
      service_account_email = var.push_service_account
      audience              = var.build_events_uri
    }
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_cloud_run_v2_service_iam_member.build_events_invoker]
}
