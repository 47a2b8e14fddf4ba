output "function_names" {
  description = "Name of each function, by entry (agent, build-events, sweeper)."
  value       = { for k, f in google_cloudfunctions2_function.this : k => f.name }
}

output "service_names" {
  description = "Name of each function's Cloud Run service (the same as the function's)."
  value       = { for k, f in google_cloudfunctions2_function.this : k => f.name }
}

output "uris" {
  description = "HTTPS URL of each function's Cloud Run service."
  value       = { for k, f in google_cloudfunctions2_function.this : k => f.service_config[0].uri }
}

output "source_object" {
  description = "The source archive's object in the source bucket."
  value       = google_storage_bucket_object.source.name
}
