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
  push_endpoint = var.delivery_enabled ? "${var.function_uri}/projects/${var.project_id}/topics/${google_pubsub_topic.turns.name}" : null
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

# The identity Pub/Sub signs the push requests with (an OIDC token for the function's URL).
resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-push"
  display_name = "deploychat ${var.environment}: Pub/Sub push to the agent function"
  description  = "Signs the OIDC token of the turns subscription's push requests; may only invoke the agent function."
}

# Pub/Sub mints the OIDC tokens as this account (needed in projects made before April 2021).
resource "google_service_account_iam_member" "push_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}

# The push identity may invoke the function's Cloud Run service, and nothing else.
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  count = var.delivery_enabled ? 1 : 0

  project  = var.project_id
  location = var.function_location
  name     = var.function_service_name
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

resource "google_pubsub_subscription" "to_agent" {
  count = var.delivery_enabled ? 1 : 0

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
      service_account_email = google_service_account.push.email
      audience              = var.function_uri
    }
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.push_invoker,
    google_service_account_iam_member.push_token_creator,
    google_pubsub_topic_iam_member.dead_letter_publisher,
  ]
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  count = var.delivery_enabled ? 1 : 0

  project      = var.project_id
  subscription = google_pubsub_subscription.to_agent[0].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
