variable "project_id" {
  type        = string
  description = "Google Cloud project."
}

variable "project_number" {
  type        = string
  description = "Project number (names Pub/Sub's service agent)."
}

variable "environment" {
  type        = string
  description = "Environment name (dev, prod)."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name, e.g. deploychat-prod."
}

variable "labels" {
  type        = map(string)
  description = "Labels put on every resource that takes them."
  default     = {}
}

variable "push_service_account" {
  type        = string
  description = "Email of the account Pub/Sub signs push requests with (the bootstrap root's deploychat-<env>-push)."
}

variable "function_uri" {
  type        = string
  description = "HTTPS URL of the agent function's Cloud Run service (push endpoint base and OIDC audience)."
}

variable "function_service_name" {
  type        = string
  description = "Name of the agent function's Cloud Run service (gets run.invoker for the push identity)."
}

variable "build_events_uri" {
  type        = string
  description = "HTTPS URL of the build-events function (handle_build_event)."
}

variable "build_events_service_name" {
  type        = string
  description = "Name of the build-events function's Cloud Run service."
}

variable "function_location" {
  type        = string
  description = "Region of the agent function."
}

variable "ack_deadline_seconds" {
  type        = number
  description = "Ack deadline of the push subscription, also the push request timeout (max 600)."
  default     = 600

  validation {
    condition     = var.ack_deadline_seconds >= 10 && var.ack_deadline_seconds <= 600
    error_message = "Pub/Sub accepts ack deadlines from 10 to 600 seconds."
  }
}

variable "min_backoff_seconds" {
  type        = number
  description = "Shortest delay before a failed turn is delivered again."
  default     = 10
}

variable "max_backoff_seconds" {
  type        = number
  description = "Longest delay before a failed turn is delivered again."
  default     = 600

  validation {
    condition     = var.max_backoff_seconds <= 600
    error_message = "Pub/Sub's maximum backoff is 600 seconds."
  }
}

variable "max_delivery_attempts" {
  type        = number
  description = "Deliveries of a turn before it goes to the dead-letter topic; the function's DEPLOYCHAT_MAX_DELIVERY_ATTEMPTS must be the same."
  default     = 5

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "Pub/Sub accepts 5 to 100 delivery attempts."
  }
}
