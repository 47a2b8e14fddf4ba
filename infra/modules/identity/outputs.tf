output "api_key" {
  description = "The page's browser key (DEPLOYCHAT_FIREBASE_API_KEY)."
  # Public by design: the page hands it to every visitor, and it only names the project to the
  # sign-in APIs it is restricted to. Marked sensitive it could not be part of the edge's
  # environment, which a dynamic block iterates over.
  value = nonsensitive(google_apikeys_key.browser.key_string)
}

output "auth_domain" {
  description = "The auth domain the page signs in through (DEPLOYCHAT_FIREBASE_AUTH_DOMAIN)."
  value       = "${var.project_id}.firebaseapp.com"
}

output "authorized_domains" {
  description = "Domains the sign-in may return to."
  value       = local.authorized_domains
}

output "google_sign_in" {
  description = "Whether the Google provider is on."
  value       = length(google_identity_platform_default_supported_idp_config.google) == 1
}
