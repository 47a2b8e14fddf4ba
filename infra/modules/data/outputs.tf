output "database" {
  description = "Firestore database id, as the services read it (DEPLOYCHAT_FIRESTORE_DATABASE)."
  value       = google_firestore_database.this.name
}
