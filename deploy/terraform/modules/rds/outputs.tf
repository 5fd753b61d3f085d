output "address" {
  description = "Host name of the instance (DB_HOST). The `endpoint` attribute is host:port and is not a host name."
  value       = aws_db_instance.main.address
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_db_instance.main.port
}

output "identifier" {
  description = "RDS instance identifier."
  value       = aws_db_instance.main.identifier
}

output "arn" {
  description = "RDS instance ARN (AWS Backup selection)."
  value       = aws_db_instance.main.arn
}

output "database_name" {
  description = "The service's database (DB_NAME)."
  value       = aws_db_instance.main.db_name
}

output "master_user_secret_arn" {
  description = "Secrets Manager secret RDS keeps the master credentials in (JSON username/password)."
  value       = aws_db_instance.main.master_user_secret[0].secret_arn
}

output "kms_key_arn" {
  description = "KMS key of the instance and its master secret."
  value       = aws_kms_key.rds.arn
}

output "dr_replica_identifier" {
  description = "Identifier of the recovery-region replica (null without one)."
  value       = one(aws_db_instance.dr[*].identifier)
}

output "dr_replica_arn" {
  description = "ARN of the recovery-region replica (null without one)."
  value       = one(aws_db_instance.dr[*].arn)
}
