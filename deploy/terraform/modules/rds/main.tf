data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  identifier = "${var.name_prefix}-postgres"
  root_principal = {
    AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  }
}

resource "aws_kms_key" "rds" {
  description             = "${var.name_prefix} RDS storage, Performance Insights and the master user secret"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministration"
      Effect    = "Allow"
      Principal = local.root_principal
      Action    = "kms:*"
      Resource  = "*"
    }]
  })

  tags = merge(var.tags, { Name = "${var.name_prefix}-rds" })
}

resource "aws_kms_alias" "rds" {
  name          = "alias/${var.name_prefix}-rds"
  target_key_id = aws_kms_key.rds.key_id
}

resource "aws_db_subnet_group" "main" {
  name       = "${var.name_prefix}-db"
  subnet_ids = var.subnet_ids
  tags       = merge(var.tags, { Name = "${var.name_prefix}-db" })
}

resource "aws_db_parameter_group" "main" {
  name_prefix = "${var.name_prefix}-postgres15-"
  family      = "postgres15"

  # The seed logged every statement (log_statement=all) to CloudWatch. The
  # server's statements carry emails, IP addresses and token digests as bind
  # parameters, so only schema changes are logged, and slow statements are
  # logged without their parameter values.
  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  parameter {
    name  = "log_parameter_max_length"
    value = "0"
  }

  parameter {
    name  = "log_parameter_max_length_on_error"
    value = "0"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "ssl_min_protocol_version"
    value = "TLSv1.3"
  }

  parameter {
    name         = "shared_preload_libraries"
    value        = "pg_stat_statements"
    apply_method = "pending-reboot"
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "postgresql" {
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days: a year in production, 30 days for the non-production environments' logs
  for_each = toset(["postgresql", "upgrade"])

  name              = "/aws/rds/instance/${local.identifier}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn

  tags = var.tags
}

resource "aws_iam_role" "monitoring" {
  name = "${var.name_prefix}-rds-monitoring-${data.aws_region.current.name}" # IAM names are global

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })

  tags = var.tags
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "main" {
  #checkov:skip=CKV_AWS_293:Deletion protection is var.deletion_protection, on in production (environments/production/terraform.tfvars) and off where environments are torn down
  #checkov:skip=CKV_AWS_353:Performance Insights is var.performance_insights, on in production; dev and staging use classes that do not offer it
  #checkov:skip=CKV_AWS_157:Multi-AZ is var.multi_az, on in production and off in dev and staging to halve their cost
  #checkov:skip=CKV2_AWS_30:Query logging (log_statement=all) would ship emails, IP addresses and token digests to CloudWatch; DDL and slow statements without parameters are logged instead
  identifier     = local.identifier
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class

  allocated_storage     = var.allocated_storage
  max_allocated_storage = var.max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.rds.arn

  db_name  = var.database_name
  username = var.master_username
  # RDS keeps the master password in Secrets Manager and rotates it; it never
  # appears in Terraform state (the seed generated it with random_password).
  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.rds.arn

  iam_database_authentication_enabled = true
  ca_cert_identifier                  = "rds-ca-rsa2048-g1"

  db_subnet_group_name   = aws_db_subnet_group.main.name
  vpc_security_group_ids = [var.security_group_id]
  parameter_group_name   = aws_db_parameter_group.main.name
  publicly_accessible    = false
  multi_az               = var.multi_az

  backup_retention_period  = var.backup_retention_days
  backup_window            = "03:00-04:00"
  maintenance_window       = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot    = true
  delete_automated_backups = false

  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  performance_insights_enabled          = var.performance_insights
  performance_insights_retention_period = var.performance_insights ? var.performance_insights_retention_days : null
  performance_insights_kms_key_id       = var.performance_insights ? aws_kms_key.rds.arn : null
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.monitoring.arn

  # Minor versions carry security fixes; they are applied in the maintenance window.
  auto_minor_version_upgrade = true
  apply_immediately          = false

  deletion_protection = var.deletion_protection
  skip_final_snapshot = !var.deletion_protection
  # The seed put timestamp() in this name, which changes on every plan.
  final_snapshot_identifier = "${local.identifier}-final"

  tags = merge(var.tags, { Name = local.identifier })

  depends_on = [aws_cloudwatch_log_group.postgresql]
}

# --- Disaster recovery: cross-region read replica ----------------------------

resource "aws_kms_key" "dr" {
  count    = var.dr_replica == null ? 0 : 1
  provider = aws.dr

  description             = "${var.name_prefix} RDS recovery replica"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministration"
      Effect    = "Allow"
      Principal = local.root_principal
      Action    = "kms:*"
      Resource  = "*"
    }]
  })

  tags = merge(var.tags, { Name = "${var.name_prefix}-rds-dr" })
}

resource "aws_db_subnet_group" "dr" {
  count    = var.dr_replica == null ? 0 : 1
  provider = aws.dr

  name       = "${var.name_prefix}-db-dr"
  subnet_ids = var.dr_replica.subnet_ids
  tags       = merge(var.tags, { Name = "${var.name_prefix}-db-dr" })
}

resource "aws_db_parameter_group" "dr" {
  count    = var.dr_replica == null ? 0 : 1
  provider = aws.dr

  name   = "${var.name_prefix}-postgres15-dr"
  family = "postgres15"

  dynamic "parameter" {
    for_each = aws_db_parameter_group.main.parameter
    content {
      name         = parameter.value.name
      value        = parameter.value.value
      apply_method = parameter.value.apply_method
    }
  }

  tags = var.tags
}

resource "aws_db_instance" "dr" {
  #checkov:skip=CKV_AWS_129:A read replica in the recovery region; its log export is turned on when it is promoted (runbooks/disaster-recovery.md)
  #checkov:skip=CKV_AWS_157:A single-zone replica is the recovery copy; Multi-AZ is enabled when it is promoted
  #checkov:skip=CKV2_AWS_30:Query logging would ship personal data; see the primary instance
  #checkov:skip=CKV_AWS_161:IAM authentication is inherited from the source instance
  #checkov:skip=CKV_AWS_293:Deletion protection follows var.deletion_protection, on in production
  count    = var.dr_replica == null ? 0 : 1
  provider = aws.dr

  identifier          = "${local.identifier}-dr"
  replicate_source_db = aws_db_instance.main.arn
  instance_class      = coalesce(var.dr_replica.instance_class, var.instance_class)
  storage_type        = "gp3"
  storage_encrypted   = true
  kms_key_id          = aws_kms_key.dr[0].arn

  db_subnet_group_name   = aws_db_subnet_group.dr[0].name
  vpc_security_group_ids = [var.dr_replica.security_group_id]
  parameter_group_name   = aws_db_parameter_group.dr[0].name
  publicly_accessible    = false
  multi_az               = false

  # Backups on the replica, so that the promoted instance keeps point-in-time recovery.
  backup_retention_period = 7
  copy_tags_to_snapshot   = true

  performance_insights_enabled          = true
  performance_insights_retention_period = 7
  performance_insights_kms_key_id       = aws_kms_key.dr[0].arn
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.monitoring.arn

  auto_minor_version_upgrade = true
  deletion_protection        = var.deletion_protection
  skip_final_snapshot        = true

  tags = merge(var.tags, { Name = "${local.identifier}-dr", Role = "recovery-replica" })
}
