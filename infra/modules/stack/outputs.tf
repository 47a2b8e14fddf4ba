output "edge_url" {
  description = "URL of the chat (null until the edge is deployed)."
  value       = module.edge_service.url
}

output "edge_service" {
  description = "Name of the edge's Cloud Run service."
  value       = module.edge_service.service_name
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

output "function_name" {
  description = "Name of the agent function."
  value       = module.agent_function.function_name
}

output "function_uri" {
  description = "URL of the agent function (internal ingress)."
  value       = module.agent_function.uri
}

output "image_prefix" {
  description = "Where edge images are pushed (REGION-docker.pkg.dev/PROJECT/REPO)."
  value       = module.registry.image_prefix
}

output "function_source_bucket" {
  description = "Bucket of the function's source archives."
  value       = module.registry.source_bucket
}

output "deployer_service_account" {
  description = "Full name of the Cloud Build deployer (gcloud builds submit --service-account)."
  value       = module.deployer.name
}

output "gemini_api_key_secret" {
  description = "Secret to add the Gemini API key to (gemini_api_key mode only)."
  value       = module.agent_function.gemini_api_key_secret
}
