variable "environment" {
  description = "Deployment environment: the env tag the server's metrics carry (DD_ENV)."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "production"], var.environment)
    error_message = "environment must be dev, staging or production."
  }
}

variable "service" {
  description = "The service tag the server's metrics carry (DD_SERVICE)."
  type        = string
  default     = "suma-auth"
}

variable "notify_critical" {
  description = "Datadog handles paged for availability (e.g. @pagerduty-platform, @slack-platform-alerts)."
  type        = list(string)

  validation {
    condition     = alltrue([for h in var.notify_critical : startswith(h, "@")])
    error_message = "Every handle must start with @."
  }
}

variable "notify_security" {
  description = "Datadog handles told about security signals (lockout spikes, refresh-token reuse)."
  type        = list(string)

  validation {
    condition     = alltrue([for h in var.notify_security : startswith(h, "@")])
    error_message = "Every handle must start with @."
  }
}

variable "runbook_base_url" {
  description = "Where the runbooks are read (the repository's deploy/runbooks/ on the code host)."
  type        = string

  validation {
    condition     = startswith(var.runbook_base_url, "https://")
    error_message = "runbook_base_url must be an https URL."
  }
}

variable "ecs_cluster_name" {
  description = "ECS cluster (clustername tag of aws.ecs.* metrics)."
  type        = string
}

variable "ecs_service_name" {
  description = "ECS service (servicename tag of aws.ecs.* metrics)."
  type        = string
}

variable "expected_min_tasks" {
  description = "Tasks that must always run; null when the service scales to zero on a schedule (no running-task monitor then)."
  type        = number
  default     = null
}

variable "expect_constant_traffic" {
  description = "Production has traffic at every hour: no requests at all for 15 minutes means the edge or the service is down."
  type        = bool
  default     = false
}

variable "rds_instance_id" {
  description = "RDS instance identifier (dbinstanceidentifier tag)."
  type        = string
}

variable "db_max_connections" {
  description = "max_connections of the RDS instance."
  type        = number
}

variable "db_pool_size" {
  description = "DB_POOL_SIZE of each task."
  type        = number
}

variable "redis_pool_size" {
  description = "Redis connections per task (the server's pool holds 16)."
  type        = number
  default     = 16
}

variable "redis_replication_group_id" {
  description = "Redis replication group (its nodes' cacheclusterid tags start with it)."
  type        = string
}

variable "thresholds" {
  description = "Alert thresholds (the seed's values where it had them)."
  type = object({
    error_rate_percent      = optional(number, 5)
    latency_p95_ms          = optional(number, 200)
    failed_logins_15m       = optional(number, 100)
    lockouts_30m            = optional(number, 20)
    refresh_reuse_15m       = optional(number, 10)
    hash_rejections_5m      = optional(number, 10)
    outbox_age_seconds      = optional(number, 600)
    outbox_depth            = optional(number, 500)
    redis_memory_percent    = optional(number, 85)
    db_connections_fraction = optional(number, 0.8)
  })
  default = {}
}

variable "manage_metric_configuration" {
  description = "Enable percentiles on auth.endpoint.duration. The setting is global to the Datadog organisation: exactly one environment (production) manages it."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every monitor and the dashboard (key:value strings)."
  type        = list(string)
  default     = []
}
