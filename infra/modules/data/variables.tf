variable "project_id" {
  type        = string
  description = "Google Cloud project."
}

variable "database_id" {
  type        = string
  description = "Firestore database id; \"(default)\" or a named database (DEPLOYCHAT_FIRESTORE_DATABASE)."
  default     = "(default)"
}

variable "location" {
  type        = string
  description = "Firestore location: a multi-region such as nam5 or eur3, or a region."
}

variable "point_in_time_recovery" {
  type        = bool
  description = "Keep 7 days of versions for point-in-time recovery."
  default     = false
}

variable "delete_protection" {
  type        = bool
  description = "Refuse to delete the database (and keep it when Terraform forgets it)."
  default     = true
}
