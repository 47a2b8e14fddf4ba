output "ttl_collection_groups" {
  description = "Collection groups with a TTL policy on expire_at."
  value       = sort(tolist(local.ttl_collection_groups))
}
