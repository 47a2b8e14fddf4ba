output "database" {
  description = "Firestore database id, as the services read it (DEPLOYCHAT_FIRESTORE_DATABASE)."
  value       = google_firestore_database.this.name
}

output "ttl_collection_groups" {
  description = "Collection groups with a TTL policy on expire_at."
  value       = sort(tolist(local.ttl_collection_groups))
}
