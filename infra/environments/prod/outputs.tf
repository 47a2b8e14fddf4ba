output "edge_url" {
  description = "URL of the chat page (WebSocket at /ws/chat)."
  value       = module.deploychat.edge_url
}

output "turns_topic" {
  description = "Pub/Sub topic of the chat turns."
  value       = module.deploychat.turns_topic
}

output "dead_letter_subscription" {
  description = "Pull subscription holding undeliverable turns."
  value       = module.deploychat.dead_letter_subscription
}

output "function_name" {
  description = "Name of the agent function."
  value       = module.deploychat.function_name
}

output "edge_service" {
  description = "Name of the edge's Cloud Run service."
  value       = module.deploychat.edge_service
}

output "edge_image" {
  description = "The image the edge runs."
  value       = module.deploychat.edge_image
}

output "function_names" {
  description = "The agent's functions (agent, build-events, sweeper)."
  value       = module.deploychat.function_names
}

output "authorized_domains" {
  description = "Domains sign-in may return to."
  value       = module.deploychat.authorized_domains
}
