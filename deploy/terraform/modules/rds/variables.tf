variable "name_prefix" {
  description = "Prefix of every resource name, e.g. suma-auth-production."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name_prefix))
    error_message = "name_prefix must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "engine_version" {
  description = "PostgreSQL version. A major version alone (\"15\") takes RDS's default minor, and minor upgrades follow in the maintenance window."
  type        = string
  default     = "15"

  validation {
    condition     = can(regex("^15(\\.[0-9]+)?$", var.engine_version))
    error_message = "engine_version must be PostgreSQL 15 (the parameter group family is postgres15)."
  }
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.instance_class))
    error_message = "instance_class must look like db.t4g.medium."
  }
}

variable "allocated_storage" {
  description = "Initial storage in GiB (gp3)."
  type        = number
  default     = 50

  validation {
    condition     = var.allocated_storage >= 20 && var.allocated_storage <= 16384
    error_message = "allocated_storage must be 20-16384 GiB."
  }
}

variable "max_allocated_storage" {
  description = "Storage autoscaling ceiling in GiB (the seed: twice the initial size)."
  type        = number
  default     = 100

  validation {
    condition     = var.max_allocated_storage >= 20 && var.max_allocated_storage <= 65536
    error_message = "max_allocated_storage must be 20-65536 GiB."
  }
}

variable "database_name" {
  description = "Database the service uses (DB_NAME)."
  type        = string
  default     = "suma_auth"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.database_name))
    error_message = "database_name must be a lowercase PostgreSQL identifier."
  }
}

variable "master_username" {
  description = "The RDS master user: administration only; the service logs in as its own role (runbooks/one-off-tasks.md, database bootstrap)."
  type        = string
  default     = "suma_admin"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,15}$", var.master_username)) && !contains(["suma_auth", "suma_auth_a", "suma_auth_b", "postgres", "rdsadmin"], var.master_username)
    error_message = "master_username must be a short lowercase identifier distinct from the application roles."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the DB subnet group (two zones at least)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "RDS needs subnets in at least two availability zones."
  }
}

variable "security_group_id" {
  description = "Security group of the instance (ingress from the service tasks)."
  type        = string
}

variable "multi_az" {
  description = "Synchronous standby in a second zone with automatic failover."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Automated backups and point-in-time recovery window."
  type        = number
  default     = 30

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be 1-35 (0 would disable point-in-time recovery)."
  }
}

variable "deletion_protection" {
  description = "Refuse deletion of the instance (and take a final snapshot)."
  type        = bool
  default     = true
}

variable "performance_insights" {
  description = "Performance Insights (top statements by wait). Not offered on the smallest instance classes."
  type        = bool
  default     = true
}

variable "performance_insights_retention_days" {
  description = "Performance Insights retention (7 is the free tier)."
  type        = number
  default     = 7

  validation {
    condition     = var.performance_insights_retention_days == 7 || var.performance_insights_retention_days == 731 || (var.performance_insights_retention_days % 31 == 0 && var.performance_insights_retention_days <= 713)
    error_message = "performance_insights_retention_days must be 7, 731 or a multiple of 31 up to 713."
  }
}

variable "logs_kms_key_arn" {
  description = "KMS key of the CloudWatch log groups the PostgreSQL log is exported to."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the exported PostgreSQL log (a year in production; audit)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value."
  }
}

variable "dr_replica" {
  description = "Cross-region read replica for disaster recovery (null: none). Created with the aws.dr provider in that region's private subnets."
  type = object({
    subnet_ids        = list(string)
    security_group_id = string
    instance_class    = optional(string)
  })
  default = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
