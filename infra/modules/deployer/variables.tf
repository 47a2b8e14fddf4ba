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
  description = "Prefix of every resource name, e.g. deploychat-prod."
}

variable "state_bucket" {
  type        = string
  description = "Bucket holding the Terraform state (made by hand before the first apply); null to grant nothing on it."
  default     = null
}

variable "runtime_service_accounts" {
  type        = map(string)
  description = "Runtime identities (label => full service account name) the deployer deploys services as."
  default     = {}
}

variable "project_roles" {
  type        = list(string)
  description = "Project roles of the deployer: what applying this Terraform and pushing the image need."
  default = [
    "roles/artifactregistry.admin",          # the repository, its cleanup policies, pushes
    "roles/browser",                         # read the project (data.google_project)
    "roles/cloudfunctions.developer",        # the agent function
    "roles/datastore.owner",                 # the Firestore database, TTL policies, indexes
    "roles/iam.serviceAccountViewer",        # read the service accounts
    "roles/logging.logWriter",               # build logs (CLOUD_LOGGING_ONLY)
    "roles/pubsub.admin",                    # topics, subscriptions and their IAM
    "roles/resourcemanager.projectIamAdmin", # the runtime identities' project roles
    "roles/run.admin",                       # the edge and its IAM; the function's invoker
    "roles/secretmanager.admin",             # secret containers and their IAM (never values)
    "roles/serviceusage.serviceUsageAdmin",  # enable the APIs
    "roles/storage.admin",                   # the source bucket; build source staging
  ]

  validation {
    condition     = length(setintersection(toset(var.project_roles), toset(["roles/owner", "roles/editor"]))) == 0
    error_message = "The deployer gets named roles, never roles/owner or roles/editor."
  }
}
