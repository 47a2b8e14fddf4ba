output "enabled" {
  description = "The APIs this module enabled."
  value       = sort([for s in google_project_service.this : s.service])
}
