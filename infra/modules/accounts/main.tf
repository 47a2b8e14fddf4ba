# Every identity of one environment and every role it holds on the project, made once by the
# bootstrap root (infra/bootstrap, applied by a project owner). The app root, applied by the
# deployer, then only grants roles on the resources it makes itself (a topic, a service), so the
# deployer never needs to administer the project's IAM policy or other accounts.
#
# Table of accounts and roles: README.md, Deploy to Google Cloud.

locals {
  email = { for k, sa in google_service_account.this : k => sa.email }

  accounts = {
    deployer  = "Runs cloudbuild.yaml: tests, pushes the edge image, applies infra/environments/${var.environment}."
    edge      = "Runs the edge: publishes chat turns and reads the session log."
    agent     = "Runs the agent function: the session log, the model, and Cloud Builds of users' apps."
    fn-build  = "Builds the agent function's image from its source archive (Cloud Functions' build)."
    push      = "Signs the OIDC tokens of Pub/Sub's pushes to the agent function (turns, build events)."
    scheduler = "Signs the OIDC token of the every-minute call to the stuck-turn sweeper."
    app-build = "Runs the agent's Cloud Builds of users' apps: builds the image, deploys it to Cloud Run."
    app       = "Runs the users' apps deployed to Cloud Run; holds no role."
  }

  # Project roles: only where a permission has no narrower resource to be granted on.
  project_roles = {
    deployer = [
      "roles/browser",                           # read the project (its number names Pub/Sub's agent)
      "roles/cloudfunctions.developer",          # the agent's functions
      "roles/cloudscheduler.admin",              # the sweeper's job
      "roles/datastore.indexAdmin",              # Firestore indexes and TTL policies (not the data)
      "roles/identityplatform.admin",            # sign-in configuration and the Google provider
      "roles/logging.logWriter",                 # build logs (CLOUD_LOGGING_ONLY)
      "roles/pubsub.admin",                      # topics, subscriptions and their IAM
      "roles/run.admin",                         # the edge and the IAM of every Cloud Run service
      "roles/serviceusage.apiKeysAdmin",         # the sign-in page's browser key
      "roles/serviceusage.serviceUsageConsumer", # use the enabled APIs
    ]
    edge = [
      "roles/datastore.user",    # reads the session log; creates sessions, writes cancel flags
      "roles/logging.logWriter", # structured logs
      "roles/cloudtrace.agent",  # spans of the chats it accepts
    ]
    agent = concat(
      [
        "roles/datastore.user",           # the session log: transactions on sessions, events, turns
        "roles/logging.logWriter",        # structured logs
        "roles/cloudtrace.agent",         # spans of the turns it runs
        "roles/cloudbuild.builds.editor", # start and cancel the builds of users' apps
      ],
      var.use_vertex ? ["roles/aiplatform.user"] : [], # Gemini through Vertex AI
    )
    fn-build = ["roles/logging.logWriter"]
    app-build = [
      "roles/logging.logWriter", # build logs
      "roles/run.developer",     # deploy the app's Cloud Run service (its last build step)
    ]
  }
  project_grants = merge([
    for account, roles in local.project_roles : {
      for role in roles : "${account}/${role}" => { account = account, role = role }
    }
  ]...)

  # Who may act as whom: deploying a service or a job as an account, or starting a build as it.
  act_as = {
    "deployer/edge"      = { account = "edge", member = "deployer" }
    "deployer/agent"     = { account = "agent", member = "deployer" }
    "deployer/fn-build"  = { account = "fn-build", member = "deployer" }
    "deployer/push"      = { account = "push", member = "deployer" }
    "deployer/scheduler" = { account = "scheduler", member = "deployer" }
    "agent/app-build"    = { account = "app-build", member = "agent" }
    "app-build/app"      = { account = "app", member = "app-build" }
  }
}

resource "google_service_account" "this" {
  for_each = local.accounts

  project      = var.project_id
  account_id   = "${var.name_prefix}-${each.key}"
  display_name = "deploychat ${var.environment}: ${each.key}"
  description  = each.value
}

resource "google_project_iam_member" "this" {
  for_each = local.project_grants

  project = var.project_id
  role    = each.value.role
  member  = google_service_account.this[each.value.account].member
}

resource "google_service_account_iam_member" "act_as" {
  for_each = local.act_as

  service_account_id = google_service_account.this[each.value.account].name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.this[each.value.member].member
}

# Pub/Sub mints the push requests' OIDC tokens as the push account (needed in projects made
# before April 2021; harmless after).
resource "google_service_account_iam_member" "pubsub_token_creator" {
  service_account_id = google_service_account.this["push"].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${var.pubsub_service_agent}"
}

# ------------------------------------------------------------------ buckets

resource "google_storage_bucket_iam_member" "state" {
  bucket = var.state_bucket
  role   = "roles/storage.objectAdmin"
  member = google_service_account.this["deployer"].member
}

# The deployer uploads the function's source archives; the function's build reads them.
resource "google_storage_bucket_iam_member" "function_source_deployer" {
  bucket = var.function_source_bucket
  role   = "roles/storage.objectAdmin"
  member = google_service_account.this["deployer"].member
}

resource "google_storage_bucket_iam_member" "function_source_builder" {
  bucket = var.function_source_bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.this["fn-build"].member
}

# Cloud Functions' own staging bucket, made by the registry module so it can be granted here.
resource "google_storage_bucket_iam_member" "function_staging_builder" {
  bucket = var.function_staging_bucket
  role   = "roles/storage.objectViewer"
  member = google_service_account.this["fn-build"].member
}

# <project>_cloudbuild: where `gcloud builds submit` and the agent upload build sources.
resource "google_storage_bucket_iam_member" "build_sources" {
  for_each = {
    deployer  = "roles/storage.objectViewer"  # the pipeline's own source
    agent     = "roles/storage.objectCreator" # uploads a user's app
    app-build = "roles/storage.objectViewer"  # builds it
  }

  bucket = var.build_sources_bucket
  role   = each.value
  member = google_service_account.this[each.key].member
}

# ------------------------------------------------------------------ image repositories

resource "google_artifact_registry_repository_iam_member" "images" {
  for_each = toset(["deployer", "fn-build"]) # the edge image; the function's image

  project    = var.project_id
  location   = var.region
  repository = var.images_repository
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.this[each.key].member
}

resource "google_artifact_registry_repository_iam_member" "apps" {
  project    = var.project_id
  location   = var.region
  repository = var.apps_repository
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.this["app-build"].member
}

# ------------------------------------------------------------------ secrets (containers only)

# Values are added out of band (`gcloud secrets versions add`) and never pass through
# Terraform code or variables.
resource "google_secret_manager_secret" "this" {
  for_each = toset(concat(var.use_vertex ? [] : ["gemini-api-key"], ["google-oauth-client-secret"]))

  project   = var.project_id
  secret_id = "${var.name_prefix}-${each.key}"
  labels    = var.labels

  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_iam_member" "gemini_api_key" {
  count = var.use_vertex ? 0 : 1

  project   = var.project_id
  secret_id = google_secret_manager_secret.this["gemini-api-key"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.this["agent"].member
}

# Identity Platform's Google provider takes the OAuth client's secret as an argument, so the
# app root reads it while applying (README.md, Deploy to Google Cloud: Google sign-in).
resource "google_secret_manager_secret_iam_member" "oauth_client_secret" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.this["google-oauth-client-secret"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.this["deployer"].member
}
