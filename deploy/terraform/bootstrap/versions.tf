terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.80.0"
    }
  }

  # Local state: this root creates the remote state's own bucket. Keep its
  # terraform.tfstate safe (it holds no secrets) or re-import with
  # `terraform import` if lost.
}
