output "arn" {
  description = "ALB ARN."
  value       = aws_lb.main.arn
}

output "arn_suffix" {
  description = "ALB ARN suffix (CloudWatch LoadBalancer dimension)."
  value       = aws_lb.main.arn_suffix
}

output "dns_name" {
  description = "ALB DNS name (the origin record aliases it)."
  value       = aws_lb.main.dns_name
}

output "zone_id" {
  description = "ALB hosted zone (for alias records)."
  value       = aws_lb.main.zone_id
}

output "target_group_arn" {
  description = "Target group of the service."
  value       = aws_lb_target_group.app.arn
}

output "target_group_arn_suffix" {
  description = "Target group ARN suffix (CloudWatch TargetGroup dimension)."
  value       = aws_lb_target_group.app.arn_suffix
}

output "https_listener_arn" {
  description = "HTTPS listener (the ECS service depends on it)."
  value       = aws_lb_listener.https.arn
}

output "logs_bucket" {
  description = "S3 bucket of the access logs."
  value       = aws_s3_bucket.logs.id
}
