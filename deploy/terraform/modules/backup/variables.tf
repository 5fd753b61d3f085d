variable "name_prefix" {
  description = "Prefix of every resource name, e.g. suma-auth-production."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name_prefix))
    error_message = "name_prefix must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "resource_arns" {
  description = "Resources AWS Backup protects (the RDS instance)."
  type        = list(string)

  validation {
    condition     = length(var.resource_arns) > 0
    error_message = "resource_arns must name at least one resource."
  }
}

variable "daily_retention_days" {
  description = "Days a daily recovery point is kept."
  type        = number
  default     = 35

  validation {
    condition     = var.daily_retention_days >= 7 && var.daily_retention_days <= 3650
    error_message = "daily_retention_days must be 7-3650."
  }
}

variable "weekly_retention_days" {
  description = "Days a weekly recovery point is kept."
  type        = number
  default     = 365

  validation {
    condition     = var.weekly_retention_days >= 30 && var.weekly_retention_days <= 3650
    error_message = "weekly_retention_days must be 30-3650."
  }
}

variable "copy_to_recovery_region" {
  description = "Copy every daily recovery point to a vault in the recovery region (the aws.dr provider's)."
  type        = bool
  default     = false
}

variable "recovery_region_retention_days" {
  description = "Days a copied recovery point is kept in the recovery region."
  type        = number
  default     = 35

  validation {
    condition     = var.recovery_region_retention_days >= 7 && var.recovery_region_retention_days <= 3650
    error_message = "recovery_region_retention_days must be 7-3650."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
