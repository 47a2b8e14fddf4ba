output "service_account_email" {
  description = "Email of the function's runtime identity."
  value       = google_service_account.agent.email
}

output "service_account_name" {
  description = "Full name of the function's runtime identity."
  value       = google_service_account.agent.name
}

output "builder_service_account_name" {
  description = "Full name of the function's build identity."
  value       = google_service_account.builder.name
}

output "function_name" {
  description = "Name of the agent function (null until deployed)."
  value       = try(google_cloudfunctions2_function.agent[0].name, null)
}

output "service_name" {
  description = "Name of the function's Cloud Run service (same as the function's)."
  value       = try(google_cloudfunctions2_function.agent[0].name, null)
}

output "uri" {
  description = "HTTPS URL of the function's Cloud Run service (null until deployed)."
  value       = try(google_cloudfunctions2_function.agent[0].service_config[0].uri, null)
}

output "gemini_api_key_secret" {
  description = "Secret Manager secret id to put the Gemini API key in (null in Vertex AI mode)."
  value       = try(google_secret_manager_secret.gemini_api_key[0].secret_id, null)
}
