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

output "image_prefix" {
  description = "Where Cloud Build pushes edge images."
  value       = module.deploychat.image_prefix
}

output "deployer_service_account" {
  description = "Cloud Build deployer (gcloud builds submit --service-account)."
  value       = module.deploychat.deployer_service_account
}

output "gemini_api_key_secret" {
  description = "Secret to add the Gemini API key to (gemini_api_key mode only)."
  value       = module.deploychat.gemini_api_key_secret
}
