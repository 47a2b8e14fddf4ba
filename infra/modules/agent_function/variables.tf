variable "project_id" {
  type        = string
  description = "Google Cloud project."
}

variable "region" {
  type        = string
  description = "Region of the function."
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

variable "source_zip" {
  type        = string
  description = "Path of the staged source archive (scripts/stage_function.py --zip)."
}

variable "agent_service_account" {
  type        = string
  description = "Email of the functions' runtime account (the bootstrap root's deploychat-<env>-agent)."
}

variable "builder_service_account" {
  type        = string
  description = "Email of the functions' build account (deploychat-<env>-fn-build)."
}

variable "app_build_service_account" {
  type        = string
  description = "Email of the account the agent's Cloud Builds of users' apps run as (DEPLOYCHAT_BUILD_SERVICE_ACCOUNT)."
}

variable "app_service_account" {
  type        = string
  description = "Email of the account deployed apps run as (DEPLOYCHAT_APP_SERVICE_ACCOUNT)."
}

variable "turns_topic" {
  type        = string
  description = "Short name of the turns topic (DEPLOYCHAT_TURNS_TOPIC): the sweeper publishes stuck turns to it."
}

variable "deploy_allowlist" {
  type        = list(string)
  description = "Who may deploy to Cloud Run (DEPLOYCHAT_DEPLOY_ALLOWLIST): emails and \"@domain\" entries."
  default     = []
}

variable "gemini_api_key_secret_id" {
  type        = string
  description = "Secret Manager secret holding the Gemini API key (gemini_api_key mode; the bootstrap root's secrets output)."
  default     = null
}

variable "source_bucket" {
  type        = string
  description = "Bucket the source archive is uploaded to."
}

variable "docker_repository_id" {
  type        = string
  description = "Full id of the Artifact Registry repository the function's image is pushed to."
}

variable "runtime" {
  type        = string
  description = "Cloud Functions runtime."
  default     = "python312"
}

variable "firestore_database" {
  type        = string
  description = "Firestore database id (DEPLOYCHAT_FIRESTORE_DATABASE)."
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

variable "model" {
  type        = string
  description = "Gemini model name (DEPLOYCHAT_MODEL)."
  default     = "gemini-2.5-flash"
}

variable "model_backend" {
  type        = string
  description = "How the agent reaches Gemini: \"vertex\" (Vertex AI with the function's service account) or \"gemini_api_key\" (a key held in Secret Manager)."
  default     = "vertex"

  validation {
    condition     = contains(["vertex", "gemini_api_key"], var.model_backend)
    error_message = "model_backend is \"vertex\" or \"gemini_api_key\"."
  }
}

variable "vertex_location" {
  type        = string
  description = "Vertex AI location (DEPLOYCHAT_VERTEX_LOCATION)."
  default     = "us-central1"
}

variable "timeout_seconds" {
  type        = number
  description = "Longest a turn may run before the platform stops it."
  default     = 540
}

variable "turn_lease_seconds" {
  type        = number
  description = "How long a running turn holds its session (DEPLOYCHAT_TURN_LEASE_S); must exceed timeout_seconds."
  default     = 600
}

variable "push_ack_deadline_seconds" {
  type        = number
  description = "Ack deadline of the subscription that pushes to the function; the timeout must be shorter."
  default     = 600
}

variable "max_delivery_attempts" {
  type        = number
  description = "The subscription's dead-letter max delivery attempts (DEPLOYCHAT_MAX_DELIVERY_ATTEMPTS)."
  default     = 5
}

variable "min_instances" {
  type        = number
  description = "Instances kept warm (each is billed while idle)."
  default     = 0
}

variable "max_instances" {
  type        = number
  description = "Most instances at once; caps cost and concurrent turns."
  default     = 10
}

variable "concurrency" {
  type        = number
  description = "Turns one instance runs at once (they mostly wait on the model)."
  default     = 4

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "concurrency is 1 to 1000."
  }
}

variable "memory" {
  type        = string
  description = "Memory per instance."
  default     = "1Gi"
}

variable "cpu" {
  type        = string
  description = "vCPUs per instance (at least 1 when concurrency > 1)."
  default     = "1"
}

variable "ingress_settings" {
  type        = string
  description = "Who may reach the function's URL: ALLOW_INTERNAL_ONLY admits Pub/Sub push from this project."
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.ingress_settings)
    error_message = "ingress_settings is ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
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
