variable "project_id" {
  type        = string
  description = "Google Cloud project."
}

variable "region" {
  type        = string
  description = "Region of the job and the sweeper function."
}

variable "environment" {
  type        = string
  description = "Environment name (dev, prod)."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of resource names, e.g. deploychat-prod."
}

variable "sweeper_uri" {
  type        = string
  description = "HTTPS URL of the sweeper function (sweep_turns)."
}

variable "sweeper_service_name" {
  type        = string
  description = "Name of the sweeper function's Cloud Run service."
}

variable "scheduler_service_account" {
  type        = string
  description = "Email of the account the job's OIDC token is minted for (the bootstrap root's deploychat-<env>-scheduler)."
}

variable "schedule" {
  type        = string
  description = "When the sweep runs (cron, UTC)."
  default     = "* * * * *"
}

variable "attempt_deadline_seconds" {
  type        = number
  description = "How long one sweep may take before the call is given up."
  default     = 180
}
