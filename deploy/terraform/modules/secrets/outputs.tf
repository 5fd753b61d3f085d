output "secret_arns" {
  description = "ARN of every secret, by key (jwt_signing_key, data_encryption_key, mail_relay_api_key, datadog_api_key, app_database, redis_auth_token, origin_verify)."
  value       = var.adopt_existing ? { for k, s in data.aws_secretsmanager_secret.adopted : k => s.arn } : { for k, s in aws_secretsmanager_secret.this : k => s.arn }
}

output "secret_names" {
  description = "Name of every secret, by key (for aws secretsmanager put-secret-value)."
  value       = { for k, _ in local.secrets : k => "${var.name_prefix}/${replace(k, "_", "-")}" }
}

output "secrets_kms_key_arn" {
  description = "KMS key encrypting the secrets in this region."
  value       = var.adopt_existing ? data.aws_kms_alias.adopted[0].target_key_arn : aws_kms_key.secrets[0].arn
}

output "logs_kms_key_arn" {
  description = "KMS key for CloudWatch log groups in this region."
  value       = aws_kms_key.logs.arn
}

output "redis_auth_token" {
  description = "The Redis AUTH token's first value (ElastiCache needs it at creation)."
  value       = var.adopt_existing ? data.aws_secretsmanager_secret_version.adopted_redis_auth_token[0].secret_string : random_password.redis_auth_token[0].result
  sensitive   = true
}

output "origin_verify" {
  description = "The X-Origin-Verify header value shared by CloudFront and the ALB."
  value       = var.adopt_existing ? data.aws_secretsmanager_secret_version.adopted_origin_verify[0].secret_string : random_password.origin_verify[0].result
  sensitive   = true
}

output "replica_logs_kms_key_arn" {
  description = "KMS key for CloudWatch log groups in the recovery region (null without one)."
  value       = one(aws_kms_key.logs_replica[*].arn)
}
