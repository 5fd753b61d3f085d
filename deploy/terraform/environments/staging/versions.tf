terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.80.0"
    }
    datadog = {
      source  = "DataDog/datadog"
      version = "3.45.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "3.6.3"
    }
    http = {
      source  = "hashicorp/http"
      version = "3.4.5"
    }
  }

  # State in S3, locked in DynamoDB (both created by ../../bootstrap). The
  # bucket and its KMS key carry the account id, so they are passed at init:
  #   terraform init -backend-config=../../backend.hcl   (written by ../../bootstrap)
  backend "s3" {
    key            = "suma-auth/staging.tfstate"
    region         = "us-east-1"
    encrypt        = true
    dynamodb_table = "suma-auth-terraform-locks"
  }
}
