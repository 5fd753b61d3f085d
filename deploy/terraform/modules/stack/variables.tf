# The whole service in one region: every module, wired together. Each
# environment root (environments/*) calls this module with its own values.

variable "environment" {
  description = "dev, staging or production: names every resource (suma-auth-<environment>), the server's ENVIRONMENT and the Datadog env tag."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "production"], var.environment)
    error_message = "environment must be dev, staging or production."
  }
}

variable "domain_name" {
  description = "Public host name of the API (PUBLIC_URL is https://<domain_name>)."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be a lowercase DNS name."
  }
}

variable "zone_name" {
  description = "Route 53 hosted zone that holds domain_name."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.zone_name))
    error_message = "zone_name must be a lowercase DNS name."
  }
}

variable "create_zone" {
  description = "Create the hosted zone here (an empty account) instead of using an existing one."
  type        = bool
  default     = false
}

variable "network" {
  description = "VPC layout."
  type = object({
    cidr         = string
    az_count     = optional(number, 3)
    nat_gateways = optional(string, "per_az")
  })
}

variable "image" {
  description = "Server image: repository (the ECR repository of the bootstrap root), tag (git sha) and architecture."
  type = object({
    repository   = string
    tag          = string
    architecture = optional(string, "X86_64")
  })
}

variable "service" {
  description = "ECS service size and behaviour."
  type = object({
    task_cpu                 = optional(number, 512)
    task_memory              = optional(number, 1024)
    min_capacity             = number
    max_capacity             = number
    fargate_spot             = optional(string, "none")
    paused                   = optional(bool, false)
    log_level                = optional(string, "info")
    log_retention_days       = optional(number, 90)
    db_pool_size             = optional(number, 8)
    mail_from                = optional(string)
    cpu_target_percent       = optional(number, 70)
    memory_target_percent    = optional(number, 80)
    latency_p95_threshold_ms = optional(number, 200)
    scale_down_schedule = optional(object({
      stop_cron  = string
      start_cron = string
      time_zone  = string
    }))
  })

  validation {
    condition     = var.service.max_capacity >= var.service.min_capacity
    error_message = "service.max_capacity must be at least service.min_capacity."
  }
}

variable "per_task_capacity_rps" {
  description = "Requests/s one task sustains per scenario (see modules/ecs/variables.tf for how the defaults are derived; replace with loadtests/RESULTS.md figures)."
  type = object({
    login    = number
    register = number
    refresh  = number
    me       = number
  })
  default = {
    login    = 12
    register = 12
    refresh  = 345
    me       = 4375
  }
}

variable "traffic_mix" {
  description = "Share of requests per scenario (sums to 1)."
  type = object({
    login    = number
    register = number
    refresh  = number
    me       = number
  })
  default = {
    login    = 0.08
    register = 0.02
    refresh  = 0.20
    me       = 0.70
  }
}

variable "jwt_additional_public_keys" {
  description = "Verify-only public keys during a signing-key rotation (runbooks/key-rotation.md); empty otherwise."
  type        = string
  default     = ""
}

variable "database" {
  description = "RDS PostgreSQL."
  type = object({
    instance_class        = optional(string, "db.t4g.medium")
    allocated_storage     = optional(number, 50)
    max_allocated_storage = optional(number, 100)
    multi_az              = optional(bool, true)
    backup_retention_days = optional(number, 30)
    deletion_protection   = optional(bool, true)
    max_connections       = optional(number, 400)
    log_retention_days    = optional(number, 365)
    performance_insights  = optional(bool, true)
  })
  default = {}
}

variable "redis" {
  description = "ElastiCache Redis."
  type = object({
    node_type               = optional(string, "cache.t4g.medium")
    num_cache_clusters      = optional(number, 2)
    multi_az                = optional(bool, true)
    snapshot_retention_days = optional(number, 7)
  })
  default = {}
}

variable "edge" {
  description = "CloudFront, WAF and public DNS. Disabled in a region failover deployment, which only repoints the origin record."
  type = object({
    enabled               = optional(bool, true)
    price_class           = optional(string, "PriceClass_100")
    waf_ip_rate_limit     = optional(number, 1000)
    waf_evaluation_window = optional(number, 300)
    waf_blocked_cidrs     = optional(list(string), [])
  })
  default = {}
}

variable "backup" {
  description = "AWS Backup of the database."
  type = object({
    daily_retention_days  = optional(number, 35)
    weekly_retention_days = optional(number, 365)
  })
  default = {}
}

variable "recovery" {
  description = "Disaster recovery in a second region (the aws.dr provider's): a network, a cross-region read replica, secret replicas and backup copies there. null: none."
  type = object({
    region   = string
    vpc_cidr = string
    az_count = optional(number, 2)
    db_class = optional(string)
  })
  default = null
}

variable "failover" {
  description = "Set only when deploying into the recovery region after a region loss (runbooks/disaster-recovery.md): the recovery network and the promoted replica are adopted instead of created, and the replicated secrets are read."
  type = object({
    network = object({
      vpc_id                     = string
      vpc_cidr                   = string
      public_subnet_ids          = list(string)
      private_subnet_ids         = list(string)
      alb_security_group_id      = string
      tasks_security_group_id    = string
      database_security_group_id = string
      redis_security_group_id    = string
    })
    database_identifier = string
  })
  default = null
}

variable "monitoring" {
  description = "Datadog: who is told, where the runbooks are, whether this environment manages the organisation-wide metric settings."
  type = object({
    site                        = optional(string, "datadoghq.com")
    notify_critical             = list(string)
    notify_security             = list(string)
    runbook_base_url            = string
    expect_constant_traffic     = optional(bool, false)
    manage_metric_configuration = optional(bool, false)
  })
}

variable "tags" {
  description = "Tags added to every AWS resource."
  type        = map(string)
  default     = {}
}
