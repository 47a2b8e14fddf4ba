# Firestore (native mode): the session log both services share. See deploychat/firestore_layout.py:
#
#   sessions/{session_id}                   expire_at
#   sessions/{session_id}/events/{seq:012}  seq, type, turn_id, final (chat events), expire_at
#   sessions/{session_id}/turns/t-{turn_id} expire_at

locals {
  # TTL deletes only the documents of the collection group it is set on, never their
  # subcollections, so each level of the layout needs its own policy.
  ttl_collection_groups = toset(["sessions", "events", "turns"])
}

resource "google_firestore_database" "this" {
  project                           = var.project_id
  name                              = var.database_id
  location_id                       = var.location
  type                              = "FIRESTORE_NATIVE"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = var.point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = var.delete_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.delete_protection ? "ABANDON" : "DELETE"
}

# Old sessions go away by themselves: each document carries expire_at (now + session TTL).
resource "google_firestore_field" "expire_at" {
  for_each = local.ttl_collection_groups

  project    = var.project_id
  database   = google_firestore_database.this.name
  collection = each.value
  field      = "expire_at"

  ttl_config {}

  # No query filters or orders on expire_at; indexing an ever-growing timestamp only costs
  # writes (and can hotspot), so its single-field indexes are switched off.
  index_config {}
}

# The agent's history query (services/agent_fn/agent, history of a session):
#   sessions/{sid}/events where final == true order by seq desc limit N
# An equality filter plus an order on another field needs this composite index. The edge's
# queries (seq > x order by seq; order by seq desc limit k) use single-field indexes.
resource "google_firestore_index" "events_final_seq" {
  project     = var.project_id
  database    = google_firestore_database.this.name
  collection  = "events"
  query_scope = "COLLECTION"

  fields {
    field_path = "final"
    order      = "ASCENDING"
  }

  fields {
    field_path = "seq"
    order      = "DESCENDING"
  }
}
