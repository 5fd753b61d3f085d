output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.main.id
}

output "vpc_cidr" {
  description = "The VPC's IPv4 range (the ALB's addresses are in it: TRUSTED_PROXIES)."
  value       = aws_vpc.main.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets (ALB, NAT gateways)."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets (tasks, RDS, Redis)."
  value       = aws_subnet.private[*].id
}

output "alb_security_group_id" {
  description = "Security group of the ALB."
  value       = aws_security_group.alb.id
}

output "tasks_security_group_id" {
  description = "Security group of the service tasks and the one-off admin tasks."
  value       = aws_security_group.tasks.id
}

output "database_security_group_id" {
  description = "Security group of the RDS instance."
  value       = aws_security_group.database.id
}

output "redis_security_group_id" {
  description = "Security group of the Redis replication group."
  value       = aws_security_group.redis.id
}

output "cloudfront_prefix_list_cidrs" {
  description = "CloudFront's origin-facing IPv4 ranges (the edge hop in X-Forwarded-For: TRUSTED_PROXIES)."
  value       = sort([for e in data.aws_ec2_managed_prefix_list.cloudfront.entries : e.cidr])
}
