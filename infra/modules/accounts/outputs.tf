output "emails" {
  description = "Email of every account, by its short name (deployer, edge, agent, fn-build, push, scheduler, app-build, app)."
  value       = local.email
}

output "deployer" {
  description = "Full name of the deployer (for gcloud builds submit --service-account)."
  value       = google_service_account.this["deployer"].name
}

output "project_roles" {
  description = "Each account's project roles (the README's table)."
  value       = local.project_roles
}

output "secrets" {
  description = "Secret Manager secret ids, by purpose (values are added with gcloud secrets versions add)."
  value       = { for k, s in google_secret_manager_secret.this : k => s.secret_id }
}
