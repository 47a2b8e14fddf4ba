variable "project_id" {
  type        = string
  description = "Google Cloud project."
}

variable "region" {
  type        = string
  description = "Region of the service."
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

variable "image" {
  type        = string
  description = "Edge container image (REGION-docker.pkg.dev/PROJECT/REPO/ws-edge:TAG)."
}

variable "service_account" {
  type        = string
  description = "Email of the edge's runtime account (the bootstrap root's deploychat-<env>-edge)."
}

variable "sign_in_browser_key" {
  type        = string
  description = "The browser API key the page signs in with (DEPLOYCHAT_FIREBASE_API_KEY; public, restricted to the sign-in APIs)."
}

variable "firebase_auth_domain" {
  type        = string
  description = "The Identity Platform auth domain (DEPLOYCHAT_FIREBASE_AUTH_DOMAIN), e.g. PROJECT.firebaseapp.com."
}

variable "agent_model" {
  type        = string
  description = "The model the agent runs on, shown on the page (DEPLOYCHAT_AGENT_MODEL)."
}

variable "turns_topic" {
  type        = string
  description = "Short name of the turns topic (DEPLOYCHAT_TURNS_TOPIC); the edge may publish to it."
}

variable "firestore_database" {
  type        = string
  description = "Firestore database id (DEPLOYCHAT_FIRESTORE_DATABASE)."
}

variable "allowed_origins" {
  type        = list(string)
  description = "Browser origins accepted besides the edge's own URL (DEPLOYCHAT_ALLOWED_ORIGINS), e.g. [\"https://chat.example.com\"]."
  default     = []
}

variable "log_level" {
  type        = string
  description = "Python log level (DEPLOYCHAT_LOG_LEVEL)."
  default     = "INFO"
}

variable "session_ttl_days" {
  type        = number
  description = "Days before a session's documents expire (DEPLOYCHAT_SESSION_TTL_DAYS)."
  default     = 30
}

variable "max_frame_bytes" {
  type        = number
  description = "Largest accepted WebSocket frame (DEPLOYCHAT_MAX_FRAME_BYTES)."
  default     = 65536
}

variable "publish_timeout_seconds" {
  type        = number
  description = "How long a chat waits for Pub/Sub before it is refused (DEPLOYCHAT_PUBLISH_TIMEOUT_S)."
  default     = 10
}

variable "request_timeout_seconds" {
  type        = number
  description = "Longest a request (a WebSocket) may last; clients reconnect after it."
  default     = 3600

  validation {
    condition     = var.request_timeout_seconds >= 1 && var.request_timeout_seconds <= 3600
    error_message = "Cloud Run allows request timeouts up to 3600 seconds."
  }
}

variable "concurrency" {
  type        = number
  description = "Concurrent requests (open sockets) per instance."
  default     = 1000

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "Cloud Run allows 1 to 1000 concurrent requests per instance."
  }
}

variable "min_instances" {
  type        = number
  description = "Instances kept running (billed while idle, since CPU is always allocated)."
  default     = 0
}

variable "max_instances" {
  type        = number
  description = "Most instances at once."
  default     = 10
}

variable "cpu" {
  type        = string
  description = "vCPUs per instance."
  default     = "1"
}

variable "memory" {
  type        = string
  description = "Memory per instance."
  default     = "1Gi"
}

variable "public" {
  type        = bool
  description = "Let anyone reach the edge (allUsers run.invoker); the app checks origins and tokens."
  default     = true
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the service through Terraform."
  default     = true
}

variable "extra_env" {
  type        = map(string)
  description = "More non-secret settings (DEPLOYCHAT_* names); secrets never go here."
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_env) : length(regexall("(?i)(KEY|TOKEN|SECRET|PASSWORD)", k)) == 0])
    error_message = "extra_env is for plain settings; keys, tokens and passwords go to Secret Manager."
  }
}
