output "public_url" {
  description = "The API's base URL (PUBLIC_URL)."
  value       = "https://${var.domain_name}"
}

output "name_servers" {
  description = "Name servers to delegate the zone to (only when it was created here)."
  value       = module.dns_certs.name_servers
}

output "cloudfront_distribution_id" {
  description = "CloudFront distribution (null in a failover deployment)."
  value       = local.edge ? module.cloudfront[0].distribution_id : null
}

output "waf_web_acl" {
  description = "Name and id of the WAF web ACL (null in a failover deployment)."
  value       = local.edge ? { name = module.waf[0].web_acl_name, id = module.waf[0].web_acl_id } : null
}

output "ecs_cluster_name" {
  description = "ECS cluster."
  value       = module.ecs.cluster_name
}

output "ecs_service_name" {
  description = "ECS service."
  value       = module.ecs.service_name
}

output "db_admin_task_definition" {
  description = "psql one-off task family (runbooks/one-off-tasks.md)."
  value       = module.ecs.db_admin_task_definition
}

output "redis_admin_task_definition" {
  description = "redis-cli one-off task family (runbooks/one-off-tasks.md)."
  value       = module.ecs.redis_admin_task_definition
}

output "admin_network_configuration" {
  description = "--network-configuration value for aws ecs run-task of the one-off tasks."
  value       = "awsvpcConfiguration={subnets=[${join(",", local.network.private_subnet_ids)}],securityGroups=[${local.network.tasks_security_group_id}],assignPublicIp=DISABLED}"
}

output "log_group_name" {
  description = "The service's log group."
  value       = module.ecs.log_group_name
}

output "admin_log_group_name" {
  description = "The one-off tasks' log group."
  value       = module.ecs.admin_log_group_name
}

output "secret_names" {
  description = "Secrets Manager names by key (aws secretsmanager put-secret-value --secret-id)."
  value       = module.secrets.secret_names
}

output "db_instance_identifier" {
  description = "RDS instance."
  value       = local.database.identifier
}

output "redis_replication_group_id" {
  description = "ElastiCache replication group."
  value       = module.redis.replication_group_id
}

output "backup_vault_name" {
  description = "AWS Backup vault."
  value       = module.backup.vault_name
}

output "request_count_target" {
  description = "Requests per task per minute the request-count policy aims at, and the per-task mixed capacity it comes from."
  value       = { per_task_per_minute = module.ecs.request_count_target, mix_capacity_rps = module.ecs.mix_capacity_rps }
}

output "dashboard_url" {
  description = "Datadog dashboard."
  value       = module.monitoring.dashboard_url
}

# Everything a failover deployment in the recovery region needs, printed now
# (the primary region's state may be unreachable during the disaster):
#   terraform output -json failover > failover.auto.tfvars.json.example
output "failover" {
  description = "Value of the failover variable for a deployment into the recovery region (null without a recovery region)."
  value = local.recovery ? {
    region = var.recovery.region
    failover = {
      network = {
        vpc_id                     = module.recovery_network[0].vpc_id
        vpc_cidr                   = module.recovery_network[0].vpc_cidr
        public_subnet_ids          = module.recovery_network[0].public_subnet_ids
        private_subnet_ids         = module.recovery_network[0].private_subnet_ids
        alb_security_group_id      = module.recovery_network[0].alb_security_group_id
        tasks_security_group_id    = module.recovery_network[0].tasks_security_group_id
        database_security_group_id = module.recovery_network[0].database_security_group_id
        redis_security_group_id    = module.recovery_network[0].redis_security_group_id
      }
      database_identifier = module.rds[0].dr_replica_identifier
    }
  } : null
}
