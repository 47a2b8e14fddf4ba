# Firestore (native mode): the session log both services share, made once by the bootstrap
# root (its indexes and TTL policies are the app root's: modules/firestore_indexes). See deploychat/firestore_layout.py:
#
#   sessions/{session_id}                   expire_at
#   sessions/{session_id}/events/{seq:012}  seq, type, turn_id, final (chat events), expire_at
#   sessions/{session_id}/turns/t-{turn_id} expire_at

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
