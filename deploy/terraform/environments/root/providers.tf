provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project     = "SUMA-Finance"
      Component   = "suma-auth"
      Environment = var.environment
      ManagedBy   = "Terraform"
      CostCenter  = "Engineering"
      Compliance  = "GDPR-PCI-DSS-SOC2"
    }
  }
}

# CloudFront takes its certificate and its WAF web ACL from us-east-1.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"

  default_tags {
    tags = {
      Project     = "SUMA-Finance"
      Component   = "suma-auth"
      Environment = var.environment
      ManagedBy   = "Terraform"
    }
  }
}

# The recovery region (a replica, secret replicas, backup copies); unused
# unless var.recovery is set.
provider "aws" {
  alias  = "dr"
  region = var.recovery == null ? var.aws_region : var.recovery.region

  default_tags {
    tags = {
      Project     = "SUMA-Finance"
      Component   = "suma-auth"
      Environment = var.environment
      ManagedBy   = "Terraform"
    }
  }
}

# Credentials from DD_API_KEY and DD_APP_KEY in the environment, never from files.
provider "datadog" {
  api_url = var.datadog_api_url
}
