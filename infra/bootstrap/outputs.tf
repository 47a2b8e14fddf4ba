output "state_bucket" {
  description = "The Terraform state bucket (terraform init -backend-config=bucket=...; cloudbuild.yaml _TF_STATE_BUCKET)."
  value       = google_storage_bucket.state.name
}

output "deployer_service_account" {
  description = "Full name of the Cloud Build deployer (gcloud builds submit --service-account)."
  value       = module.accounts.deployer
}

output "service_accounts" {
  description = "Email of every account of the environment, by short name."
  value       = module.accounts.emails
}

output "project_roles" {
  description = "Each account's project roles (README.md, Deploy to Google Cloud, the accounts table)."
  value       = module.accounts.project_roles
}

output "image_prefix" {
  description = "Where Cloud Build pushes edge images."
  value       = module.registry.image_prefix
}

output "secrets" {
  description = "Secret Manager secrets to add values to (gcloud secrets versions add <secret> --data-file=-)."
  value       = module.accounts.secrets
}

output "pubsub_service_agent" {
  description = "Pub/Sub's service agent, made on first apply."
  value       = google_project_service_identity.this["pubsub.googleapis.com"].email
}
