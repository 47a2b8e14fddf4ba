output "url" {
  description = "HTTPS URL of the edge (the chat page; the WebSocket is at /ws/chat)."
  value       = google_cloud_run_v2_service.edge.uri
}

output "service_name" {
  description = "Name of the edge's Cloud Run service."
  value       = google_cloud_run_v2_service.edge.name
}

output "image" {
  description = "The image the edge runs (give it again to re-apply by hand)."
  value       = var.image
}
