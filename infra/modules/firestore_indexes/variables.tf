variable "project_id" {
  type        = string
  description = "Google Cloud project."
}

variable "database" {
  type        = string
  description = "Firestore database id (made by the bootstrap root)."
}
