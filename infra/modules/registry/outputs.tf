output "repository_id" {
  description = "Full id of the Docker repository (projects/.../repositories/...)."
  value       = google_artifact_registry_repository.images.id
}

output "repository_name" {
  description = "Short name of the Docker repository."
  value       = google_artifact_registry_repository.images.repository_id
}

output "image_prefix" {
  description = "Prefix of image names in the repository (REGION-docker.pkg.dev/PROJECT/REPO)."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "source_bucket" {
  description = "Name of the bucket holding the function's source archives."
  value       = google_storage_bucket.function_source.name
}

output "apps_repository_name" {
  description = "Short name of the repository of the users' apps."
  value       = google_artifact_registry_repository.apps.repository_id
}

output "build_sources_bucket" {
  description = "The <project>_cloudbuild bucket."
  value       = google_storage_bucket.build_sources.name
}

output "function_staging_bucket" {
  description = "Cloud Functions' staging bucket."
  value       = google_storage_bucket.function_staging.name
}
