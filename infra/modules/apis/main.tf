# The Google APIs the deployment uses. They stay enabled when this module is destroyed: other
# things in the project may depend on them, and disabling an API can delete its data.

resource "google_project_service" "this" {
  for_each = toset(var.services)

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
