variable "project_id" {
  type        = string
  description = "Google Cloud project of the dev environment."
}

variable "region" {
  type        = string
  description = "Region of the services."
  default     = "us-central1"
}

variable "edge_image" {
  type        = string
  description = "Edge image to run (set by Cloud Build: the image it built; by hand: terraform output -raw edge_image)."
}

variable "function_source_zip" {
  type        = string
  description = "Staged function source archive (set by Cloud Build; by hand: scripts/stage_function.py --out build/function --zip build/function.zip)."
}

variable "firestore_database" {
  type        = string
  description = "Firestore database id; use a named one if another environment shares the project."
  default     = "(default)"
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

variable "deploy_allowlist" {
  type        = list(string)
  description = "Who may deploy to Cloud Run: emails (\"alice@example.com\") and whole domains (\"@example.org\"). Empty: nobody deploys; everyone signed in may chat and analyse."
  default     = []
}

variable "google_oauth_client_id" {
  type        = string
  description = "OAuth client id for Google sign-in (README.md, Deploy to Google Cloud); null until it is made."
  default     = null
}

variable "extra_authorized_domains" {
  type        = list(string)
  description = "Domains besides the edge's run.app host that sign-in may return to (a custom domain)."
  default     = []
}
