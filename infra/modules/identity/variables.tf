variable "project_id" {
  type        = string
  description = "Google Cloud project."
}

variable "environment" {
  type        = string
  description = "Environment name (dev, prod)."
}

variable "name_prefix" {
  type        = string
  description = "Prefix of resource names, e.g. deploychat-prod."
}

variable "edge_url" {
  type        = string
  description = "HTTPS URL of the edge (its host becomes an authorized domain)."
}

variable "extra_authorized_domains" {
  type        = list(string)
  description = "More domains the sign-in may return to (a custom domain in front of the edge)."
  default     = []
}

variable "email_sign_in" {
  type        = bool
  description = "Also offer email and password sign-in (the CLI's `deploychat login` uses it)."
  default     = true
}

variable "google_oauth_client_id" {
  type        = string
  description = "OAuth client id of Google sign-in; null leaves the Google provider off until it is made."
  default     = null
}

variable "google_oauth_client_secret_secret_id" {
  type        = string
  description = "Secret Manager secret holding that OAuth client's secret (the bootstrap root's secrets output)."
  default     = null
}
