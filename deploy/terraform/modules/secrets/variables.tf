variable "name_prefix" {
  description = "Prefix of every resource name, e.g. suma-auth-production."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name_prefix))
    error_message = "name_prefix must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "recovery_window_days" {
  description = "Days a deleted secret can still be restored."
  type        = number
  default     = 30

  validation {
    condition     = var.recovery_window_days >= 7 && var.recovery_window_days <= 30
    error_message = "recovery_window_days must be 7-30."
  }
}

variable "replica_region" {
  description = "Region the secrets are replicated to for disaster recovery (null: none). Signing keys, the data encryption key and the database role must survive a region loss, or a restored database cannot be read."
  type        = string
  default     = null

  validation {
    condition     = var.replica_region == null || can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.replica_region))
    error_message = "replica_region must be an AWS region name such as us-west-2, or null."
  }
}

variable "app_database_username" {
  description = "The application's first login role (the database bootstrap creates it; rotation alternates with the _b role)."
  type        = string
  default     = "suma_auth_a"

  validation {
    condition     = contains(["suma_auth_a", "suma_auth_b"], var.app_database_username)
    error_message = "app_database_username must be suma_auth_a or suma_auth_b (the two roles the bootstrap script creates)."
  }
}

variable "adopt_existing" {
  description = "Read the secrets replicated into this region instead of creating them (a region failover deployment, see runbooks/disaster-recovery.md)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
