variable "environment" {
  description = "dev, staging or production."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "production"], var.environment)
    error_message = "environment must be dev, staging or production."
  }
}

variable "aws_region" {
  description = "Region of the service (the seed: us-east-1)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as us-east-1."
  }
}

variable "domain_name" {
  description = "Public host name of the API, e.g. auth.suma-finance.com."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be a lowercase DNS name."
  }
}

variable "zone_name" {
  description = "Route 53 hosted zone holding domain_name."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.zone_name))
    error_message = "zone_name must be a lowercase DNS name."
  }
}

variable "create_zone" {
  description = "Create the hosted zone (then delegate it at the registrar)."
  type        = bool
  default     = false
}

variable "network" {
  description = "VPC range, zones and NAT gateways (per_az, single or none)."
  type = object({
    cidr         = string
    az_count     = optional(number, 3)
    nat_gateways = optional(string, "per_az")
  })

  validation {
    condition     = can(cidrhost(var.network.cidr, 0)) && contains(["per_az", "single", "none"], var.network.nat_gateways)
    error_message = "network.cidr must be a CIDR and network.nat_gateways per_az, single or none."
  }
}

variable "image_repository" {
  description = "ECR repository of the server image (output ecr_repository_url of deploy/terraform/bootstrap)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+$", var.image_repository))
    error_message = "image_repository must be registry/path without a tag."
  }
}

variable "image_tag" {
  description = "Image tag to deploy: the git sha CI pushed (-var image_tag=<sha>)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be an immutable tag, never latest."
  }
}

variable "image_architecture" {
  description = "X86_64 or ARM64."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.image_architecture)
    error_message = "image_architecture must be X86_64 or ARM64."
  }
}

variable "service" {
  description = "ECS service: size, capacity bounds, Spot, schedule, server settings."
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
    condition     = var.service.min_capacity >= 1 && var.service.max_capacity >= var.service.min_capacity
    error_message = "service needs min_capacity >= 1 and max_capacity >= min_capacity."
  }

  validation {
    condition     = contains(["none", "mixed", "all"], var.service.fargate_spot)
    error_message = "service.fargate_spot must be none, mixed or all."
  }
}

variable "service_paused" {
  description = "Run no task: the first apply, before the database bootstrap and the secrets' values exist (terraform apply -var service_paused=true)."
  type        = bool
  default     = false
}

variable "per_task_capacity_rps" {
  description = "Requests/s one task sustains per scenario; defaults derived from measured figures (modules/ecs/variables.tf), to be replaced by loadtests/RESULTS.md."
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

  validation {
    condition     = alltrue([for v in values(var.per_task_capacity_rps) : v > 0])
    error_message = "Every capacity must be positive."
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

  validation {
    condition     = abs(sum(values(var.traffic_mix)) - 1) < 0.001
    error_message = "traffic_mix must sum to 1."
  }
}

variable "jwt_additional_public_keys" {
  description = "Verify-only public keys (PEM) during a signing-key rotation: TF_VAR_jwt_additional_public_keys=\"$(cat keys/jwt-b-public.pem)\". Empty otherwise."
  type        = string
  default     = ""

  validation {
    condition     = var.jwt_additional_public_keys == "" || strcontains(var.jwt_additional_public_keys, "-----BEGIN PUBLIC KEY-----")
    error_message = "jwt_additional_public_keys must be empty or PEM public keys."
  }
}

variable "database" {
  description = "RDS PostgreSQL settings."
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

  validation {
    condition     = var.database.backup_retention_days >= 1 && var.database.backup_retention_days <= 35
    error_message = "database.backup_retention_days must be 1-35."
  }
}

variable "redis" {
  description = "ElastiCache Redis settings."
  type = object({
    node_type               = optional(string, "cache.t4g.medium")
    num_cache_clusters      = optional(number, 2)
    multi_az                = optional(bool, true)
    snapshot_retention_days = optional(number, 7)
  })
  default = {}

  validation {
    condition     = var.redis.num_cache_clusters >= 2
    error_message = "redis.num_cache_clusters must be at least 2 (automatic failover needs a replica)."
  }
}

variable "edge" {
  description = "CloudFront, WAF and public DNS."
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
  description = "AWS Backup retention."
  type = object({
    daily_retention_days  = optional(number, 35)
    weekly_retention_days = optional(number, 365)
  })
  default = {}
}

variable "recovery" {
  description = "Recovery region: network, cross-region replica, secret replicas, backup copies (null: none)."
  type = object({
    region   = string
    vpc_cidr = string
    az_count = optional(number, 2)
    db_class = optional(string)
  })
  default = null

  validation {
    condition     = var.recovery == null || can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.recovery.region))
    error_message = "recovery.region must be an AWS region name."
  }
}

variable "failover" {
  description = "Only for a deployment into the recovery region after a region loss: the value of `terraform output -json failover` (.failover) saved beforehand."
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
  description = "Datadog notification handles, runbook location and organisation-wide settings."
  type = object({
    site                        = optional(string, "datadoghq.com")
    notify_critical             = list(string)
    notify_security             = list(string)
    runbook_base_url            = string
    expect_constant_traffic     = optional(bool, false)
    manage_metric_configuration = optional(bool, false)
  })
}

variable "datadog_api_url" {
  description = "Datadog API of the organisation's site."
  type        = string
  default     = "https://api.datadoghq.com/"

  validation {
    condition     = startswith(var.datadog_api_url, "https://api.")
    error_message = "datadog_api_url must be https://api.<site>/."
  }
}

variable "tags" {
  description = "Extra tags on every AWS resource."
  type        = map(string)
  default     = {}
}
