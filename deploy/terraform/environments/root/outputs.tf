output "public_url" {
  description = "The API's base URL."
  value       = module.stack.public_url
}

output "name_servers" {
  description = "Name servers to delegate the zone to (only when create_zone)."
  value       = module.stack.name_servers
}

output "cloudfront_distribution_id" {
  description = "CloudFront distribution."
  value       = module.stack.cloudfront_distribution_id
}

output "waf_web_acl" {
  description = "WAF web ACL name and id."
  value       = module.stack.waf_web_acl
}

output "ecs_cluster_name" {
  description = "ECS cluster."
  value       = module.stack.ecs_cluster_name
}

output "ecs_service_name" {
  description = "ECS service."
  value       = module.stack.ecs_service_name
}

output "db_admin_task_definition" {
  description = "psql one-off task family."
  value       = module.stack.db_admin_task_definition
}

output "redis_admin_task_definition" {
  description = "redis-cli one-off task family."
  value       = module.stack.redis_admin_task_definition
}

output "admin_network_configuration" {
  description = "--network-configuration of aws ecs run-task for the one-off tasks."
  value       = module.stack.admin_network_configuration
}

output "log_group_name" {
  description = "The service's log group."
  value       = module.stack.log_group_name
}

output "admin_log_group_name" {
  description = "The one-off tasks' log group."
  value       = module.stack.admin_log_group_name
}

output "secret_names" {
  description = "Secrets Manager names by key."
  value       = module.stack.secret_names
}

output "db_instance_identifier" {
  description = "RDS instance."
  value       = module.stack.db_instance_identifier
}

output "redis_replication_group_id" {
  description = "ElastiCache replication group."
  value       = module.stack.redis_replication_group_id
}

output "backup_vault_name" {
  description = "AWS Backup vault."
  value       = module.stack.backup_vault_name
}

output "request_count_target" {
  description = "Request-count scaling target and the per-task capacity behind it."
  value       = module.stack.request_count_target
}

output "dashboard_url" {
  description = "Datadog dashboard."
  value       = module.stack.dashboard_url
}

output "failover" {
  description = "The failover variable for a deployment into the recovery region."
  value       = module.stack.failover
}
