# The identity Cloud Build runs as (`gcloud builds submit --service-account=...`): it tests,
# pushes the edge image and applies this Terraform. Applying Terraform means managing the IAM
# bindings above, so this account is powerful (README.md, Deploy to Google Cloud: who may start builds matters).
# It still gets named roles rather than roles/owner or roles/editor, so what it can do is
# written down, and runtime identities never share it.

resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-deployer"
  display_name = "deploychat ${var.environment}: Cloud Build deployer"
  description  = "Runs cloudbuild.yaml: builds, tests and applies infra/environments/${var.environment}."
}

resource "google_project_iam_member" "deployer" {
  for_each = toset(var.project_roles)

  project = var.project_id
  role    = each.value
  member  = google_service_account.deployer.member
}

# Deploying a service as a runtime identity needs actAs on it, and Terraform manages the IAM
# policies of those identities (e.g. Pub/Sub's token creator on the push identity): both are
# granted per account rather than on the whole project.
locals {
  sa_roles = ["roles/iam.serviceAccountUser", "roles/iam.serviceAccountAdmin"]
  sa_grants = {
    for pair in setproduct(keys(var.runtime_service_accounts), local.sa_roles) :
    "${pair[0]}/${pair[1]}" => { account = var.runtime_service_accounts[pair[0]], role = pair[1] }
  }
}

resource "google_service_account_iam_member" "runtime" {
  for_each = local.sa_grants

  service_account_id = each.value.account
  role               = each.value.role
  member             = google_service_account.deployer.member
}

# The Terraform state.
resource "google_storage_bucket_iam_member" "state" {
  count = var.state_bucket == null ? 0 : 1

  bucket = var.state_bucket
  role   = "roles/storage.objectAdmin"
  member = google_service_account.deployer.member
}
