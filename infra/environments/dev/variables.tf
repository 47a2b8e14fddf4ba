variable "project_id" {
  type        = string
  description = "Google Cloud project of the dev environment."
}

variable "region" {
  type        = string
  description = "Region of the services."
  default     = "us-central1"
}

variable "state_bucket" {
  type        = string
  description = "Bucket holding this Terraform state (the one given to terraform init); the deployer gets access to it."
  default     = null
}

variable "edge_image" {
  type        = string
  description = "Edge image to run (set by Cloud Build); null for the first, foundation-only apply."
  default     = null
}

variable "function_source_zip" {
  type        = string
  description = "Staged function source archive (set by Cloud Build); null for the first, foundation-only apply."
  default     = null
}

variable "firestore_database" {
  type        = string
  description = "Firestore database id; use a named one if another environment shares the project."
  default     = "(default)"
}

variable "firestore_location" {
  type        = string
  description = "Firestore location."
  default     = "nam5"
}

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

variable "allowed_origins" {
  type        = list(string)
  description = "Browser origins the edge accepts besides its own URL, e.g. [\"https://chat.example.com\"]."
  default     = []
}

variable "auth_token_secret_id" {
  type        = string
  description = "Secret Manager secret holding the token clients must send; null for none."
  default     = null
}

variable "edge_min_instances" {
  type        = number
  description = "Edge instances kept running."
  default     = 0
}

variable "edge_max_instances" {
  type        = number
  description = "Most edge instances at once."
  default     = 5
}

variable "function_max_instances" {
  type        = number
  description = "Most agent function instances at once."
  default     = 5
}

variable "edge_public" {
  type        = bool
  description = "Let anyone reach the edge (allUsers run.invoker); false if an organisation policy forbids it."
  default     = true
}
