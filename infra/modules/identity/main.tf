# Who may use the chat: Identity Platform (Firebase Authentication) with Google sign-in. The
# edge verifies the ID token the page (or the CLI) sends in `init`; the page signs in with the
# browser key and auth domain below (the edge serves them from /api/config).

locals {
  # Where the sign-in pop-up may return to: the edge's own host, the auth domain's hosts, and
  # any custom domain in front of the edge.
  authorized_domains = distinct(concat(
    [
      trimprefix(var.edge_url, "https://"),
      "${var.project_id}.firebaseapp.com",
      "${var.project_id}.web.app",
    ],
    var.extra_authorized_domains,
  ))
}

resource "google_identity_platform_config" "this" {
  project            = var.project_id
  authorized_domains = local.authorized_domains

  # Guests are not offered in production; the Google provider below is the way in.
  sign_in {
    allow_duplicate_emails = false

    anonymous {
      enabled = false
    }

    email {
      enabled           = var.email_sign_in
      password_required = true
    }
  }
}

# Google sign-in needs an OAuth client (Google Auth Platform > Clients, type "Web application");
# its id is a variable and its secret is read from Secret Manager while applying
# (README.md, Deploy to Google Cloud: Google sign-in).
data "google_secret_manager_secret_version_access" "oauth_client_secret" {
  count = var.google_oauth_client_id == null ? 0 : 1

  project = var.project_id
  secret  = var.google_oauth_client_secret_secret_id
}

resource "google_identity_platform_default_supported_idp_config" "google" {
  count = var.google_oauth_client_id == null ? 0 : 1

  project       = var.project_id
  idp_id        = "google.com"
  client_id     = var.google_oauth_client_id
  client_secret = data.google_secret_manager_secret_version_access.oauth_client_secret[0].secret_data
  enabled       = true

  depends_on = [google_identity_platform_config.this]
}

# The page's browser key: public by design (it only names the project to the sign-in APIs),
# so it is restricted to those APIs.
resource "google_apikeys_key" "browser" {
  project      = var.project_id
  name         = "${var.name_prefix}-sign-in"
  display_name = "deploychat ${var.environment}: sign-in from the page"

  restrictions {
    api_targets {
      service = "identitytoolkit.googleapis.com"
    }
    api_targets {
      service = "securetoken.googleapis.com"
    }
  }
}
