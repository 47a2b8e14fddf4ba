variable "project_id" {
  type        = string
  description = "Google Cloud project."
}

variable "region" {
  type        = string
  description = "Region of the repositories."
}

variable "environment" {
  type        = string
  description = "Environment name (dev, prod)."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every account id, e.g. deploychat-prod (deploychat-prod-agent)."
}

variable "labels" {
  type        = map(string)
  description = "Labels put on the secrets."
  default     = {}
}

variable "use_vertex" {
  type        = bool
  description = "The agent reaches Gemini through Vertex AI (aiplatform.user) rather than an API key in Secret Manager."
  default     = true
}

variable "pubsub_service_agent" {
  type        = string
  description = "Email of Pub/Sub's service agent (google_project_service_identity)."
}

variable "state_bucket" {
  type        = string
  description = "Bucket of the Terraform state; the deployer gets object access to it."
}

variable "function_source_bucket" {
  type        = string
  description = "Bucket of the agent function's source archives."
}

variable "function_staging_bucket" {
  type        = string
  description = "Cloud Functions' staging bucket (gcf-v2-sources-<number>-<region>)."
}

variable "build_sources_bucket" {
  type        = string
  description = "The <project>_cloudbuild bucket of build sources."
}

variable "images_repository" {
  type        = string
  description = "Short name of the repository of the edge's and the function's images."
}

variable "apps_repository" {
  type        = string
  description = "Short name of the repository of the users' app images."
}
