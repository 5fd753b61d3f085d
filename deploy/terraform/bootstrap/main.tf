provider "aws" {
  region = var.aws_region
  default_tags {
    tags = { Project = "SUMA-Finance", Component = "suma-auth", ManagedBy = "Terraform", Layer = "bootstrap" }
  }
}

provider "aws" {
  alias  = "recovery"
  region = coalesce(var.recovery_region, var.aws_region)
  default_tags {
    tags = { Project = "SUMA-Finance", Component = "suma-auth", ManagedBy = "Terraform", Layer = "bootstrap" }
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  recovery   = var.recovery_region != null
  key_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministration"
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${local.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

resource "aws_kms_key" "state" {
  description             = "suma-auth Terraform state, locks and images"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy                  = local.key_policy
}

resource "aws_kms_alias" "state" {
  name          = "alias/suma-auth-terraform"
  target_key_id = aws_kms_key.state.key_id
}

# --- State bucket ------------------------------------------------------------------

module "state_bucket" {
  source = "./state_bucket"

  name        = "suma-auth-tfstate-${local.account_id}"
  kms_key_arn = aws_kms_key.state.arn
}

resource "aws_dynamodb_table" "locks" {
  name         = "suma-auth-terraform-locks"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "LockID"

  attribute {
    name = "LockID"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.state.arn
  }

  deletion_protection_enabled = true
}

# A failover deployment keeps its state in the recovery region: the primary
# region's bucket may be unreachable when it is needed.
resource "aws_kms_key" "recovery_state" {
  count    = local.recovery ? 1 : 0
  provider = aws.recovery

  description             = "suma-auth Terraform state of failover deployments"
  deletion_window_in_days = 30
  enable_key_rotation     = true
  policy                  = local.key_policy
}

module "recovery_state_bucket" {
  source = "./state_bucket"
  count  = local.recovery ? 1 : 0
  providers = {
    aws = aws.recovery
  }

  name        = "suma-auth-tfstate-${local.account_id}-${var.recovery_region}"
  kms_key_arn = aws_kms_key.recovery_state[0].arn
}

resource "aws_dynamodb_table" "recovery_locks" {
  count    = local.recovery ? 1 : 0
  provider = aws.recovery

  name         = "suma-auth-terraform-locks"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "LockID"

  attribute {
    name = "LockID"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.recovery_state[0].arn
  }

  deletion_protection_enabled = true
}

# --- Image repository ----------------------------------------------------------------

resource "aws_ecr_repository" "server" {
  name                 = "suma-auth"
  image_tag_mutability = "IMMUTABLE" # a tag (the git sha) always names the same image

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.state.arn
  }
}

resource "aws_ecr_lifecycle_policy" "server" {
  repository = aws_ecr_repository.server.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the most recent images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.image_retention_count
      }
      action = { type = "expire" }
    }]
  })
}

# Images are replicated to the recovery region, where a failover deployment
# pulls them from.
resource "aws_ecr_replication_configuration" "server" {
  count = local.recovery ? 1 : 0

  replication_configuration {
    rule {
      destination {
        region      = var.recovery_region
        registry_id = local.account_id
      }
      repository_filter {
        filter      = "suma-auth"
        filter_type = "PREFIX_MATCH"
      }
    }
  }
}
