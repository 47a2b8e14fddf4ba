variable "project_id" {
  type        = string
  description = "Google Cloud project."
}

variable "region" {
  type        = string
  description = "Region of the repository and the bucket (the services' region)."
}

variable "environment" {
  type        = string
  description = "Environment name (dev, prod), used in descriptions."
}

variable "repository_id" {
  type        = string
  description = "Artifact Registry repository id for the images."
}

variable "project_number" {
  type        = string
  description = "Project number (names Cloud Functions' staging bucket)."
}

variable "apps_repository_id" {
  type        = string
  description = "Artifact Registry repository of the users' apps (the agent's default: deploychat)."
  default     = "deploychat"
}

variable "source_bucket_name" {
  type        = string
  description = "Name of the bucket holding the function's source archives (globally unique)."
}

variable "keep_image_versions" {
  type        = number
  description = "How many of the newest image versions are always kept."
  default     = 10
}

variable "image_max_age_days" {
  type        = number
  description = "Image versions older than this (and not among the newest kept) are deleted."
  default     = 90
}

variable "source_max_age_days" {
  type        = number
  description = "Function source archives older than this are deleted."
  default     = 180
}

variable "force_destroy" {
  type        = bool
  description = "Let terraform destroy delete the bucket even if it holds archives."
  default     = false
}

variable "labels" {
  type        = map(string)
  description = "Labels put on every resource."
  default     = {}
}
