output "primary_endpoint_address" {
  description = "Primary endpoint host name (REDIS_ENDPOINT is rediss://<this>:6379)."
  value       = aws_elasticache_replication_group.main.primary_endpoint_address
}

output "port" {
  description = "Redis port."
  value       = aws_elasticache_replication_group.main.port
}

output "replication_group_id" {
  description = "Replication group id."
  value       = aws_elasticache_replication_group.main.id
}

output "member_clusters" {
  description = "Cache cluster ids of the nodes (the cacheclusterid tag of aws.elasticache.* metrics)."
  value       = sort(tolist(aws_elasticache_replication_group.main.member_clusters))
}
