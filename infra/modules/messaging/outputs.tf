output "turns_topic" {
  description = "Id (short name) of the turns topic (DEPLOYCHAT_TURNS_TOPIC)."
  value       = google_pubsub_topic.turns.name
}

output "turns_topic_id" {
  description = "Full name of the turns topic (projects/.../topics/...)."
  value       = google_pubsub_topic.turns.id
}

output "dead_letter_topic" {
  description = "Short name of the dead-letter topic."
  value       = google_pubsub_topic.dead_letter.name
}

output "dead_letter_subscription" {
  description = "Pull subscription holding dead letters for inspection."
  value       = google_pubsub_subscription.dead_letter_hold.name
}

output "delivery_subscription" {
  description = "Push subscription delivering turns to the function."
  value       = google_pubsub_subscription.to_agent.name
}

output "push_endpoint" {
  description = "Where Pub/Sub pushes the turns."
  value       = local.push_endpoint
}

output "build_events_subscription" {
  description = "Push subscription delivering Cloud Build notifications to the build-events function."
  value       = google_pubsub_subscription.build_events.name
}
