data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  # Every secret the service uses. `generated` ones get a first value from
  # Terraform (the value is kept in the encrypted state; later rotations are
  # done outside Terraform, see runbooks/secret-rotation.md); the others are put
  # by the operator (deploy/README.md, step 4) and never pass through Terraform.
  secrets = {
    jwt_signing_key = {
      description = "JWT RS256 signing key: JSON {\"private_key\": PEM, \"public_key\": PEM} (suma-auth keys generate)"
      generated   = false
    }
    data_encryption_key = {
      description = "AES-256-GCM key, base64 of 32 random bytes, sealing TOTP secrets and the mail outbox (DATA_ENCRYPTION_KEY)"
      generated   = false
    }
    mail_relay_api_key = {
      description = "SendGrid API key: the server submits mail to smtp.sendgrid.net:587 as user apikey (SENDGRID_API_KEY)"
      generated   = false
    }
    datadog_api_key = {
      description = "Datadog API key of the agent sidecar (DD_API_KEY)"
      generated   = false
    }
    app_database = {
      description = "The application's PostgreSQL login role: JSON {\"username\", \"password\"} (not the master user)"
      generated   = true
    }
    redis_auth_token = {
      description = "ElastiCache Redis AUTH token (REDIS_AUTH_TOKEN)"
      generated   = true
    }
    origin_verify = {
      description = "Value of the X-Origin-Verify header CloudFront adds and the ALB requires"
      generated   = true
    }
  }
  create = var.adopt_existing ? {} : local.secrets
}

# --- KMS ---------------------------------------------------------------------

resource "aws_kms_key" "secrets" {
  count = var.adopt_existing ? 0 : 1

  description             = "${var.name_prefix} Secrets Manager"
  deletion_window_in_days = 30
  enable_key_rotation     = true

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "SecretsManagerInThisAccount"
        Effect    = "Allow"
        Principal = { AWS = "*" }
        Action    = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:CreateGrant"]
        Resource  = "*"
        Condition = {
          StringEquals = {
            "kms:CallerAccount" = local.account_id
            "kms:ViaService"    = "secretsmanager.${local.region}.amazonaws.com"
          }
        }
      }
    ]
  })

  tags = merge(var.tags, { Name = "${var.name_prefix}-secrets" })
}

resource "aws_kms_alias" "secrets" {
  count         = var.adopt_existing ? 0 : 1
  name          = "alias/${var.name_prefix}-secrets"
  target_key_id = aws_kms_key.secrets[0].key_id
}

# The replicas' key lives in the recovery region (a KMS key never leaves its region).
resource "aws_kms_key" "secrets_replica" {
  count    = var.replica_region != null && !var.adopt_existing ? 1 : 0
  provider = aws.dr

  description             = "${var.name_prefix} Secrets Manager replicas"
  deletion_window_in_days = 30
  enable_key_rotation     = true

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "SecretsManagerInThisAccount"
        Effect    = "Allow"
        Principal = { AWS = "*" }
        Action    = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:CreateGrant"]
        Resource  = "*"
        Condition = {
          StringEquals = {
            "kms:CallerAccount" = local.account_id
            "kms:ViaService"    = "secretsmanager.${var.replica_region}.amazonaws.com"
          }
        }
      }
    ]
  })

  tags = merge(var.tags, { Name = "${var.name_prefix}-secrets-replica" })
}

resource "aws_kms_alias" "secrets_replica" {
  count         = var.replica_region != null && !var.adopt_existing ? 1 : 0
  provider      = aws.dr
  name          = "alias/${var.name_prefix}-secrets-replica"
  target_key_id = aws_kms_key.secrets_replica[0].key_id
}

# In a failover deployment the secrets are the replicas written by the primary
# region, encrypted with the replica key above.
data "aws_kms_alias" "adopted" {
  count = var.adopt_existing ? 1 : 0
  name  = "alias/${var.name_prefix}-secrets-replica"
}

# CloudWatch Logs encryption for every log group of the service in this region.
resource "aws_kms_key" "logs" {
  description             = "${var.name_prefix} CloudWatch Logs"
  deletion_window_in_days = 30
  enable_key_rotation     = true

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"
          }
        }
      }
    ]
  })

  tags = merge(var.tags, { Name = "${var.name_prefix}-logs" })
}

resource "aws_kms_alias" "logs" {
  name          = "alias/${var.name_prefix}-logs"
  target_key_id = aws_kms_key.logs.key_id
}

# CloudWatch Logs key of the recovery region's network (its flow logs).
resource "aws_kms_key" "logs_replica" {
  count    = var.replica_region != null && !var.adopt_existing ? 1 : 0
  provider = aws.dr

  description             = "${var.name_prefix} CloudWatch Logs (recovery region)"
  deletion_window_in_days = 30
  enable_key_rotation     = true

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.replica_region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${var.replica_region}:${local.account_id}:log-group:*"
          }
        }
      }
    ]
  })

  tags = merge(var.tags, { Name = "${var.name_prefix}-logs-replica" })
}

# --- Secrets -----------------------------------------------------------------

resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:Rotation is a coordinated procedure (signing keys are published before they sign, the database login alternates between two roles, Redis needs ROTATE then SET): runbooks/secret-rotation.md, runbooks/key-rotation.md
  for_each = local.create

  name                    = "${var.name_prefix}/${replace(each.key, "_", "-")}"
  description             = each.value.description
  kms_key_id              = aws_kms_key.secrets[0].arn
  recovery_window_in_days = var.recovery_window_days

  dynamic "replica" {
    for_each = var.replica_region == null ? [] : [var.replica_region]
    content {
      region     = replica.value
      kms_key_id = aws_kms_key.secrets_replica[0].arn
    }
  }

  tags = merge(var.tags, { Name = "${var.name_prefix}-${each.key}" })
}

data "aws_secretsmanager_secret" "adopted" {
  for_each = var.adopt_existing ? local.secrets : {}
  name     = "${var.name_prefix}/${replace(each.key, "_", "-")}"
}

resource "random_password" "app_database" {
  count   = var.adopt_existing ? 0 : 1
  length  = 40
  special = false
}

resource "random_password" "redis_auth_token" {
  count   = var.adopt_existing ? 0 : 1
  length  = 64
  special = false # ElastiCache AUTH tokens allow only printable ASCII without @, " and /
}

resource "random_password" "origin_verify" {
  count   = var.adopt_existing ? 0 : 1
  length  = 48
  special = false
}

resource "aws_secretsmanager_secret_version" "app_database" {
  count     = var.adopt_existing ? 0 : 1
  secret_id = aws_secretsmanager_secret.this["app_database"].id
  secret_string = jsonencode({
    username = var.app_database_username
    password = random_password.app_database[0].result
  })

  # Rotation alternates the login role outside Terraform; never write it back.
  lifecycle {
    ignore_changes = [secret_string]
  }
}

resource "aws_secretsmanager_secret_version" "redis_auth_token" {
  count         = var.adopt_existing ? 0 : 1
  secret_id     = aws_secretsmanager_secret.this["redis_auth_token"].id
  secret_string = random_password.redis_auth_token[0].result

  lifecycle {
    ignore_changes = [secret_string]
  }
}

resource "aws_secretsmanager_secret_version" "origin_verify" {
  count     = var.adopt_existing ? 0 : 1
  secret_id = aws_secretsmanager_secret.this["origin_verify"].id
  # Follows Terraform: rotate with -replace on random_password.origin_verify.
  secret_string = random_password.origin_verify[0].result
}

data "aws_secretsmanager_secret_version" "adopted_redis_auth_token" {
  count     = var.adopt_existing ? 1 : 0
  secret_id = data.aws_secretsmanager_secret.adopted["redis_auth_token"].id
}

data "aws_secretsmanager_secret_version" "adopted_origin_verify" {
  count     = var.adopt_existing ? 1 : 0
  secret_id = data.aws_secretsmanager_secret.adopted["origin_verify"].id
}
