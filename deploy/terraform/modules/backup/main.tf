data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  key_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministration"
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

resource "aws_kms_key" "backup" {
  description             = "${var.name_prefix} AWS Backup vault"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy                  = local.key_policy
  tags                    = merge(var.tags, { Name = "${var.name_prefix}-backup" })
}

resource "aws_backup_vault" "main" {
  name        = "${var.name_prefix}-vault"
  kms_key_arn = aws_kms_key.backup.arn
  tags        = var.tags
}

resource "aws_kms_key" "recovery_region" {
  count    = var.copy_to_recovery_region ? 1 : 0
  provider = aws.dr

  description             = "${var.name_prefix} AWS Backup vault (recovery region)"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy                  = local.key_policy
  tags                    = merge(var.tags, { Name = "${var.name_prefix}-backup-dr" })
}

resource "aws_backup_vault" "recovery_region" {
  count    = var.copy_to_recovery_region ? 1 : 0
  provider = aws.dr

  name        = "${var.name_prefix}-vault-dr"
  kms_key_arn = aws_kms_key.recovery_region[0].arn
  tags        = var.tags
}

resource "aws_backup_plan" "main" {
  name = "${var.name_prefix}-plan"

  # The seed's daily rule moved recovery points to cold storage after 30 days
  # and deleted them after 90; AWS requires 90 days in cold storage before
  # deletion (delete_after >= cold_storage_after + 90), so the plan was
  # rejected. RDS snapshots cannot move to cold storage at all: no cold tier.
  rule {
    rule_name         = "daily"
    target_vault_name = aws_backup_vault.main.name
    schedule          = "cron(0 2 * * ? *)" # 02:00 UTC, before the RDS backup window (03:00-04:00)
    start_window      = 60
    completion_window = 240

    lifecycle {
      delete_after = var.daily_retention_days
    }

    dynamic "copy_action" {
      for_each = var.copy_to_recovery_region ? [1] : []
      content {
        destination_vault_arn = aws_backup_vault.recovery_region[0].arn
        lifecycle {
          delete_after = var.recovery_region_retention_days
        }
      }
    }

    recovery_point_tags = merge(var.tags, { Schedule = "daily" })
  }

  rule {
    rule_name         = "weekly"
    target_vault_name = aws_backup_vault.main.name
    schedule          = "cron(0 6 ? * SUN *)" # after the RDS backup and maintenance windows
    start_window      = 60
    completion_window = 360

    lifecycle {
      delete_after = var.weekly_retention_days
    }

    recovery_point_tags = merge(var.tags, { Schedule = "weekly" })
  }

  tags = var.tags
}

resource "aws_iam_role" "backup" {
  name = "${var.name_prefix}-backup-${data.aws_region.current.name}" # IAM names are global: one per region

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "backup.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "backup" {
  for_each = toset(["AWSBackupServiceRolePolicyForBackup", "AWSBackupServiceRolePolicyForRestores"])

  role       = aws_iam_role.backup.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/${each.key}"
}

resource "aws_backup_selection" "main" {
  name         = "${var.name_prefix}-database"
  plan_id      = aws_backup_plan.main.id
  iam_role_arn = aws_iam_role.backup.arn
  resources    = var.resource_arns
}
