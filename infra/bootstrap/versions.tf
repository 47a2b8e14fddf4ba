terraform {
  required_version = ">= 1.9"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.50.0"
    }
    # google_project_service_identity exists only in the beta provider.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.50.0"
    }
  }

  # The state lives in the bucket this root makes. The very first apply runs with local state
  # (a backend_override.tf, README.md, Deploy to Google Cloud, step 1) and then moves it here:
  #   terraform init -migrate-state -backend-config="bucket=<state bucket>" -backend-config="prefix=deploychat/bootstrap/<env>"
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    managed-by = "terraform"
  }
}

provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = {
    managed-by = "terraform"
  }
}
