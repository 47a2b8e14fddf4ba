output "url" {
  description = "HTTPS URL of the edge (the chat page; the WebSocket is at /ws/chat). Null until deployed."
  value       = try(google_cloud_run_v2_service.edge[0].uri, null)
}

output "service_name" {
  description = "Name of the edge's Cloud Run service (null until deployed)."
  value       = try(google_cloud_run_v2_service.edge[0].name, null)
}

output "service_account_email" {
  description = "Email of the edge's runtime identity."
  value       = google_service_account.edge.email
}

output "service_account_name" {
  description = "Full name of the edge's runtime identity."
  value       = google_service_account.edge.name
}
