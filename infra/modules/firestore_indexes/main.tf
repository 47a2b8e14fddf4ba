# The Firestore indexes and TTL policies the services' queries need (the database itself is the
# bootstrap root's: modules/data). See deploychat/firestore_layout.py.

locals {
  # TTL deletes only the documents of the collection group it is set on, never their
  # subcollections, so each level of the layout needs its own policy.
  ttl_collection_groups = toset(["sessions", "events", "turns"])
}

# Old sessions go away by themselves: each document carries expire_at (now + session TTL).
resource "google_firestore_field" "expire_at" {
  for_each = local.ttl_collection_groups

  project    = var.project_id
  database   = var.database
  collection = each.value
  field      = "expire_at"

  ttl_config {}

  # No query filters or orders on expire_at; indexing an ever-growing timestamp only costs
  # writes (and can hotspot), so its single-field indexes are switched off.
  index_config {}
}

# The agent's history query (services/agent_fn/agent, history of a session):
#   sessions/{sid}/events where final == true order by seq desc limit N
# An equality filter plus an order on another field needs this composite index. The edge reads
# events by document id, and listens to session documents: no index.
resource "google_firestore_index" "events_final_seq" {
  project     = var.project_id
  database    = var.database
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

# The edge's session list (GET /api/sessions):
#   sessions where owner_uid == uid order by updated_at desc
resource "google_firestore_index" "sessions_owner_updated" {
  project     = var.project_id
  database    = var.database
  collection  = "sessions"
  query_scope = "COLLECTION"

  fields {
    field_path = "owner_uid"
    order      = "ASCENDING"
  }

  fields {
    field_path = "updated_at"
    order      = "DESCENDING"
  }
}

# The sweeper's turns that were accepted and never started (agent/sweeper.py), in every session:
#   collection group turns where status == "accepted" and accepted_at < t
# A collection-group query with an equality and a range on another field needs this index.
resource "google_firestore_index" "turns_status_accepted_at" {
  project     = var.project_id
  database    = var.database
  collection  = "turns"
  query_scope = "COLLECTION_GROUP"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "accepted_at"
    order      = "ASCENDING"
  }
}
