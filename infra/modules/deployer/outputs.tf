output "email" {
  description = "Email of the deployer service account."
  value       = google_service_account.deployer.email
}

output "name" {
  description = "Full name of the deployer (for gcloud builds submit --service-account)."
  value       = google_service_account.deployer.name
}
