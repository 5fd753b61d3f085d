output "vault_name" {
  description = "Backup vault (aws backup list-recovery-points-by-backup-vault)."
  value       = aws_backup_vault.main.name
}

output "recovery_region_vault_name" {
  description = "Vault of the copies in the recovery region (null without copies)."
  value       = one(aws_backup_vault.recovery_region[*].name)
}

output "plan_id" {
  description = "Backup plan id."
  value       = aws_backup_plan.main.id
}
