# The stuck-turn sweeper (sweep_turns, an HTTP function) runs every minute: Cloud Scheduler
# calls it with an OIDC token of the scheduler account, the only account that may invoke it.

resource "google_cloud_run_v2_service_iam_member" "sweeper_invoker" {
  project  = var.project_id
  location = var.region
  name     = var.sweeper_service_name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.scheduler_service_account}"
}

resource "google_cloud_scheduler_job" "sweep" {
  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-sweep-turns"
  description = "deploychat ${var.environment}: drive turns whose attempt died (sweep_turns)."
  schedule    = var.schedule
  time_zone   = "Etc/UTC"
  # A sweep that overruns the next minute is cut short; the next one carries on.
  attempt_deadline = "${var.attempt_deadline_seconds}s"

  retry_config {
    retry_count = 0 # the next minute's sweep is the retry
  }

  http_target {
    http_method = "POST"
    uri         = var.sweeper_uri
    headers = {
      Content-Type = "application/json"
    }
    body = base64encode("{}")

    oidc_token {
      service_account_email = var.scheduler_service_account
      audience              = var.sweeper_uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.sweeper_invoker]
}
