output "cluster_name" {
  description = "ECS cluster."
  value       = aws_ecs_cluster.main.name
}

output "service_name" {
  description = "ECS service."
  value       = aws_ecs_service.app.name
}

output "task_definition_arn" {
  description = "Current task definition of the service."
  value       = aws_ecs_task_definition.app.arn
}

output "db_admin_task_definition" {
  description = "Family of the psql one-off task (default command: the database bootstrap)."
  value       = aws_ecs_task_definition.db_admin.family
}

output "redis_admin_task_definition" {
  description = "Family of the redis-cli one-off task."
  value       = aws_ecs_task_definition.redis_admin.family
}

output "log_group_name" {
  description = "Log group of the service."
  value       = aws_cloudwatch_log_group.app.name
}

output "admin_log_group_name" {
  description = "Log group of the one-off admin tasks."
  value       = aws_cloudwatch_log_group.admin.name
}

output "mix_capacity_rps" {
  description = "Requests/s one task sustains for the configured traffic mix (from per_task_capacity_rps)."
  value       = local.mix_capacity_rps
}

output "request_count_target" {
  description = "ALBRequestCountPerTarget target of the request-count policy (requests per task per minute)."
  value       = local.request_count_target
}
