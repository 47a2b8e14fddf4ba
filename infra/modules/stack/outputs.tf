output "edge_url" {
  description = "URL of the chat (the WebSocket is at /ws/chat)."
  value       = module.edge_service.url
}

output "edge_service" {
  description = "Name of the edge's Cloud Run service."
  value       = module.edge_service.service_name
}

output "edge_image" {
  description = "The image the edge runs (give it again to re-apply by hand)."
  value       = module.edge_service.image
}

output "turns_topic" {
  description = "Pub/Sub topic the edge publishes turns to."
  value       = module.messaging.turns_topic
}

output "dead_letter_topic" {
  description = "Pub/Sub topic of undeliverable turns."
  value       = module.messaging.dead_letter_topic
}

output "dead_letter_subscription" {
  description = "Pull subscription holding the dead letters."
  value       = module.messaging.dead_letter_subscription
}

output "delivery_subscription" {
  description = "Push subscription from the turns topic to the function."
  value       = module.messaging.delivery_subscription
}

output "build_events_subscription" {
  description = "Push subscription from the cloud-builds topic to the build-events function."
  value       = module.messaging.build_events_subscription
}

output "function_name" {
  description = "Name of the agent function (handle_turn)."
  value       = module.agent_function.function_names["agent"]
}

output "function_names" {
  description = "Name of each function, by entry (agent, build-events, sweeper)."
  value       = module.agent_function.function_names
}

output "sweep_job" {
  description = "Cloud Scheduler job calling the sweeper every minute."
  value       = module.scheduler.job
}

output "authorized_domains" {
  description = "Domains sign-in may return to."
  value       = module.identity.authorized_domains
}

output "google_sign_in" {
  description = "Whether Google sign-in is on (google_oauth_client_id given)."
  value       = module.identity.google_sign_in
}
