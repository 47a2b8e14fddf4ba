variable "project_id" {
  type        = string
  description = "Google Cloud project the environment lives in."
}

variable "region" {
  type        = string
  description = "Region of the services, the repository and the source bucket."
}

variable "environment" {
  type        = string
  description = "Environment name; part of every resource name (deploychat-<environment>-...)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.environment))
    error_message = "environment is 2-8 lowercase letters or digits (it goes into service account ids)."
  }
}

variable "labels" {
  type        = map(string)
  description = "Extra labels for every resource."
  default     = {}
}

# ------------------------------------------------------------------ artifacts (always given)

variable "edge_image" {
  type        = string
  description = "Edge image to run (cloudbuild.yaml: the one it built and pushed)."
}

variable "function_source_zip" {
  type        = string
  description = "Staged function source archive (scripts/stage_function.py --zip)."
}

# ------------------------------------------------------------------ shared settings

variable "firestore_database" {
  type        = string
  description = "Firestore database id (DEPLOYCHAT_FIRESTORE_DATABASE)."
  default     = "(default)"
}

variable "session_ttl_days" {
  type        = number
  description = "Days before a session's documents expire (TTL on expire_at)."
  default     = 30
}

variable "log_level" {
  type        = string
  description = "Python log level of both services."
  default     = "INFO"
}

variable "deletion_protection" {
  type        = bool
  description = "Protect the edge service from deletion through Terraform."
  default     = true
}

# ------------------------------------------------------------------ delivery

variable "ack_deadline_seconds" {
  type        = number
  description = "Ack deadline of the push subscription (and its request timeout)."
  default     = 600
}

variable "min_backoff_seconds" {
  type        = number
  description = "Shortest redelivery delay."
  default     = 10
}

variable "max_backoff_seconds" {
  type        = number
  description = "Longest redelivery delay."
  default     = 600
}

variable "max_delivery_attempts" {
  type        = number
  description = "Deliveries before a turn is dead-lettered; also the function's DEPLOYCHAT_MAX_DELIVERY_ATTEMPTS."
  default     = 5
}

# ------------------------------------------------------------------ agent function

variable "model_backend" {
  type        = string
  description = "\"vertex\" (Vertex AI through the function's identity) or \"gemini_api_key\" (key in Secret Manager)."
  default     = "vertex"
}

variable "model" {
  type        = string
  description = "Gemini model name."
  default     = "gemini-2.5-flash"
}

variable "vertex_location" {
  type        = string
  description = "Vertex AI location."
  default     = "us-central1"
}

variable "function_timeout_seconds" {
  type        = number
  description = "Longest a turn may run."
  default     = 540
}

variable "turn_lease_seconds" {
  type        = number
  description = "How long a running turn holds its session; must exceed the function timeout."
  default     = 600
}

variable "function_min_instances" {
  type        = number
  description = "Function instances kept warm."
  default     = 0
}

variable "function_max_instances" {
  type        = number
  description = "Most function instances at once."
  default     = 10
}

variable "function_concurrency" {
  type        = number
  description = "Turns one function instance runs at once."
  default     = 4
}

variable "function_ingress_settings" {
  type        = string
  description = "Ingress of the function's URL."
  default     = "ALLOW_INTERNAL_ONLY"
}

# ------------------------------------------------------------------ edge

variable "allowed_origins" {
  type        = list(string)
  description = "Browser origins the edge accepts besides its own URL."
  default     = []
}

variable "edge_min_instances" {
  type        = number
  description = "Edge instances kept running."
  default     = 0
}

variable "edge_max_instances" {
  type        = number
  description = "Most edge instances at once."
  default     = 10
}

variable "edge_concurrency" {
  type        = number
  description = "Open sockets per edge instance."
  default     = 1000
}

variable "edge_public" {
  type        = bool
  description = "Let anyone reach the edge."
  default     = true
}

# ------------------------------------------------------------------ who may use it

variable "deploy_allowlist" {
  type        = list(string)
  description = "Who may deploy to Cloud Run: emails (alice@example.com) and whole domains (@example.org); the session owner's verified email must match. Empty: nobody deploys, everyone may chat and analyse."
  default     = []

  validation {
    condition     = alltrue([for e in var.deploy_allowlist : can(regex("^[^@\\s]*@[a-z0-9.-]+\\.[a-z]{2,}$", lower(trimspace(e))))])
    error_message = "Each entry is an email (alice@example.com) or a domain written @example.org."
  }
}

variable "google_oauth_client_id" {
  type        = string
  description = "OAuth client id for Google sign-in (its secret goes to the bootstrap root's google-oauth-client-secret secret); null until it is made."
  default     = null
}

variable "extra_authorized_domains" {
  type        = list(string)
  description = "Domains besides the edge's run.app host that sign-in may return to (a custom domain)."
  default     = []
}
