variable "aws_region" {
  description = "Region of the state bucket, the lock table and the image repository (the environments' backend region)."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region name."
  }
}

variable "recovery_region" {
  description = "Region of the failover deployment's state bucket and of the image repository's replica (null: none)."
  type        = string
  default     = "us-west-2"

  validation {
    condition     = var.recovery_region == null || can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.recovery_region))
    error_message = "recovery_region must be an AWS region name or null."
  }
}

variable "image_retention_count" {
  description = "Images kept in the repository (older ones expire; running tags are the recent ones)."
  type        = number
  default     = 200

  validation {
    condition     = var.image_retention_count >= 20
    error_message = "image_retention_count must be at least 20, so that rollbacks find their image."
  }
}
