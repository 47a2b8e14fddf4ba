variable "project_id" {
  type        = string
  description = "Google Cloud project of the environment."
}

variable "region" {
  type        = string
  description = "Region of the services, the repositories and the buckets."
  default     = "us-central1"
}

variable "environment" {
  type        = string
  description = "Environment name (dev, prod): the app root infra/environments/<environment> that this bootstraps."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.environment))
    error_message = "environment is 2-8 lowercase letters or digits (it goes into service account ids)."
  }
}

variable "state_bucket" {
  type        = string
  description = "Name of the Terraform state bucket to make (globally unique), e.g. <project>-tfstate."
}

variable "model_backend" {
  type        = string
  description = "\"vertex\" (Vertex AI through the agent's identity) or \"gemini_api_key\" (a key in Secret Manager); the same as the app root's."
  default     = "vertex"

  validation {
    condition     = contains(["vertex", "gemini_api_key"], var.model_backend)
    error_message = "model_backend is \"vertex\" or \"gemini_api_key\"."
  }
}

variable "firestore_database" {
  type        = string
  description = "Firestore database id; use a named one if another environment shares the project."
  default     = "(default)"
}

variable "firestore_location" {
  type        = string
  description = "Firestore location (multi-region nam5/eur3 or a region)."
  default     = "nam5"
}

variable "protect_data" {
  type        = bool
  description = "Protect the Firestore database from deletion and keep 7 days of versions (prod); false lets a dev environment be torn down."
  default     = true
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy empty the buckets (dev)."
  default     = false
}
