variable "name_prefix" {
  description = "Prefix of every resource name, e.g. suma-auth-production."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name_prefix))
    error_message = "name_prefix must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "environment" {
  description = "Deployment environment: the server's ENVIRONMENT and the Datadog env tag (DD_ENV)."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "production"], var.environment)
    error_message = "environment must be dev, staging or production."
  }
}

# --- Image --------------------------------------------------------------------

variable "image_repository" {
  description = "Container registry repository of the server image (the bootstrap root's ECR repository)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+$", var.image_repository))
    error_message = "image_repository must be registry/path without a tag."
  }
}

variable "image_tag" {
  description = "Image tag to run: the git sha CI pushed (the server reports its own version and sha as the Datadog version tag)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be an immutable tag such as the git sha, never latest."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the image (ARM64 Fargate costs about 20 % less)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "datadog_agent_image" {
  description = "Datadog agent sidecar image, pinned to a version."
  type        = string
  default     = "public.ecr.aws/datadog/agent:7.59.0"

  validation {
    condition     = can(regex(":[0-9]+\\.[0-9]+\\.[0-9]+$", var.datadog_agent_image))
    error_message = "datadog_agent_image must be pinned to an x.y.z version tag."
  }
}

variable "helper_images" {
  description = "Images of the one-off admin tasks: psql and redis-cli."
  type = object({
    psql      = string
    redis_cli = string
  })
  default = {
    psql      = "public.ecr.aws/docker/library/postgres:15-alpine"
    redis_cli = "public.ecr.aws/docker/library/redis:7-alpine"
  }

  validation {
    condition     = alltrue([for i in values(var.helper_images) : can(regex(":[A-Za-z0-9._-]+$", i)) && !endswith(i, ":latest")])
    error_message = "Every helper image must carry an explicit tag other than latest."
  }
}

# --- Task size and server settings -------------------------------------------

variable "task_cpu" {
  description = "Task CPU units (the seed: 512 = half a vCPU). The capacity figures below are per task of this size."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.task_cpu)
    error_message = "task_cpu must be a Fargate size: 256, 512, 1024, 2048 or 4096."
  }
}

variable "task_memory" {
  description = "Task memory in MiB (the server stays under 150 MB under load; the agent takes about 256)."
  type        = number
  default     = 1024

  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 30720 && var.task_memory % 512 == 0
    error_message = "task_memory must be a multiple of 512 MiB between 512 and 30720 (and valid for task_cpu)."
  }
}

variable "container_port" {
  description = "Port the server listens on (PORT)."
  type        = number
  default     = 8080

  validation {
    condition     = var.container_port > 1024 && var.container_port < 65536
    error_message = "container_port must be 1025-65535."
  }
}

variable "shutdown_timeout_seconds" {
  description = "The server's graceful drain on SIGTERM (SHUTDOWN_TIMEOUT_SECONDS)."
  type        = number
  default     = 25

  validation {
    condition     = var.shutdown_timeout_seconds >= 1 && var.shutdown_timeout_seconds <= 110
    error_message = "shutdown_timeout_seconds must be 1-110 (Fargate's stop timeout is at most 120 s)."
  }
}

variable "stop_timeout_seconds" {
  description = "Seconds ECS waits after SIGTERM before SIGKILL; must exceed the server's drain."
  type        = number
  default     = 35

  validation {
    condition     = var.stop_timeout_seconds <= 120
    error_message = "stop_timeout_seconds must be at most 120 (Fargate's maximum)."
  }

  validation {
    condition     = var.stop_timeout_seconds >= var.shutdown_timeout_seconds + 5
    error_message = "stop_timeout_seconds must exceed shutdown_timeout_seconds by at least 5 s, or ECS kills the server mid-drain."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the server (a level or a tracing filter)."
  type        = string
  default     = "info"

  validation {
    condition     = can(regex("^[a-z_=,:0-9]+$", var.log_level))
    error_message = "log_level must be a level (error, warn, info, debug, trace) or a filter such as info,suma_auth=debug."
  }
}

variable "public_url" {
  description = "Base URL of links in mails (PUBLIC_URL); production requires https."
  type        = string

  validation {
    condition     = startswith(var.public_url, "https://") && !endswith(var.public_url, "/")
    error_message = "public_url must be https://host without a trailing slash."
  }
}

variable "mail_from" {
  description = "Sender of the service's mails (MAIL_FROM), a sender verified at the relay; null keeps the server's default."
  type        = string
  default     = null
}

variable "smtp_port" {
  description = "Port of the mail relay (SMTP_PORT; SendGrid: 587 with STARTTLS)."
  type        = number
  default     = 587

  validation {
    condition     = contains([465, 587, 2525], var.smtp_port)
    error_message = "smtp_port must be 465, 587 or 2525."
  }
}

variable "trusted_proxies" {
  description = "CIDRs whose X-Forwarded-For is trusted (TRUSTED_PROXIES): the VPC (the ALB) and CloudFront's origin-facing ranges."
  type        = list(string)

  validation {
    condition     = length(var.trusted_proxies) > 0 && alltrue([for c in var.trusted_proxies : can(cidrhost(c, 0))])
    error_message = "trusted_proxies must be a non-empty list of CIDRs."
  }
}

variable "jwt_additional_public_keys" {
  description = "Verify-only public keys (PEM, several concatenated) during a key rotation (JWT_ADDITIONAL_PUBLIC_KEYS); empty outside a rotation. Public keys are not secret."
  type        = string
  default     = ""

  validation {
    condition     = var.jwt_additional_public_keys == "" || strcontains(var.jwt_additional_public_keys, "-----BEGIN PUBLIC KEY-----")
    error_message = "jwt_additional_public_keys must be empty or PEM public keys."
  }
}

# --- Dependencies -------------------------------------------------------------

variable "database" {
  description = "PostgreSQL: the RDS address (not its endpoint, which includes the port), port, name, the application's credentials secret and the master secret (admin tasks only)."
  type = object({
    address                = string
    port                   = number
    name                   = string
    app_secret_arn         = string
    master_user_secret_arn = string
    master_kms_key_arn     = string
  })

  validation {
    condition     = !strcontains(var.database.address, ":")
    error_message = "database.address must be a host name; the RDS endpoint attribute (host:port) is not."
  }
}

variable "rds_ca_bundle_pem" {
  description = "The RDS certificate authorities (PEM) the server verifies the database against (DB_SSLROOTCERT takes the PEM text)."
  type        = string

  validation {
    condition     = strcontains(var.rds_ca_bundle_pem, "-----BEGIN CERTIFICATE-----")
    error_message = "rds_ca_bundle_pem must hold PEM certificates."
  }
}

variable "db_pool_size" {
  description = "PostgreSQL connections per task (DB_POOL_SIZE). The server's default is 16; a half-core task is CPU-bound long before 8 connections are busy, and 8 keeps a fleet at max_capacity in the middle of a deployment under max_connections."
  type        = number
  default     = 8

  validation {
    condition     = var.db_pool_size >= 2 && var.db_pool_size <= 100
    error_message = "db_pool_size must be 2-100."
  }
}

variable "db_max_connections" {
  description = "max_connections of the RDS instance (db.t4g.medium: about 400). A precondition on the service checks that max_capacity x deployment_maximum_percent x db_pool_size stays under 90 % of it."
  type        = number
  default     = 400

  validation {
    condition     = var.db_max_connections >= 20
    error_message = "db_max_connections must be at least 20."
  }
}

variable "redis" {
  description = "Redis primary endpoint host name and the AUTH token secret."
  type = object({
    primary_endpoint = string
    port             = number
    auth_secret_arn  = string
  })
}

variable "secret_arns" {
  description = "Secrets Manager ARNs by key (the secrets module's output)."
  type        = map(string)

  validation {
    condition     = alltrue([for k in ["jwt_signing_key", "data_encryption_key", "mail_relay_api_key", "datadog_api_key", "app_database", "redis_auth_token"] : contains(keys(var.secret_arns), k)])
    error_message = "secret_arns must hold jwt_signing_key, data_encryption_key, mail_relay_api_key, datadog_api_key, app_database and redis_auth_token."
  }
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the secrets."
  type        = string
}

variable "datadog_site" {
  description = "Datadog site of the agent (DD_SITE)."
  type        = string
  default     = "datadoghq.com"

  validation {
    condition     = contains(["datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com", "ddog-gov.com"], var.datadog_site)
    error_message = "datadog_site must be a Datadog site."
  }
}

variable "private_subnet_ids" {
  description = "Subnets of the tasks."
  type        = list(string)
}

variable "tasks_security_group_id" {
  description = "Security group of the tasks."
  type        = string
}

variable "target_group_arn" {
  description = "ALB target group of the service."
  type        = string
}

variable "listener_arn" {
  description = "The ALB listener that forwards to target_group_arn: the service is created after it (ECS refuses a target group no listener uses)."
  type        = string
}

variable "alb_arn_suffix" {
  description = "ALB ARN suffix (request-count and latency scaling)."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "Target group ARN suffix (request-count and latency scaling)."
  type        = string
}

variable "logs_kms_key_arn" {
  description = "KMS key of the log groups."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the service's log group (the seed: 90 in production, 30 elsewhere)."
  type        = number
  default     = 90

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value."
  }
}

# --- Capacity and scaling ------------------------------------------------------

variable "service_paused" {
  description = "Run no task (desired, min and max 0): the first apply, before the database bootstrap and the operator's secrets exist."
  type        = bool
  default     = false
}

variable "min_capacity" {
  description = "Fewest tasks (the seed: 3 in production, one per zone)."
  type        = number
  default     = 3

  validation {
    condition     = var.min_capacity >= 1 && var.min_capacity <= 100
    error_message = "min_capacity must be 1-100."
  }
}

variable "max_capacity" {
  description = "Most tasks (the seed: 20). Tasks x (db_pool_size + 1) connections must stay under the instance's max_connections."
  type        = number
  default     = 20

  validation {
    condition     = var.max_capacity >= 1 && var.max_capacity <= 200
    error_message = "max_capacity must be 1-200."
  }

  validation {
    condition     = var.max_capacity >= var.min_capacity
    error_message = "max_capacity must be at least min_capacity."
  }
}

variable "deployment_maximum_percent" {
  description = "Tasks a deployment may run, in percent of the desired count (new tasks start before old ones stop)."
  type        = number
  default     = 200

  validation {
    condition     = var.deployment_maximum_percent >= 100 && var.deployment_maximum_percent <= 200
    error_message = "deployment_maximum_percent must be 100-200."
  }
}

variable "fargate_spot" {
  description = "Capacity providers: \"none\" (on-demand only, production), \"mixed\" (first task on-demand, the rest on Spot) or \"all\" (Spot only)."
  type        = string
  default     = "none"

  validation {
    condition     = contains(["none", "mixed", "all"], var.fargate_spot)
    error_message = "fargate_spot must be none, mixed or all."
  }
}

variable "scale_down_schedule" {
  description = "Outside production: scale to zero at night and back in the morning (cron expressions in time_zone). null: always on."
  type = object({
    stop_cron  = string
    start_cron = string
    time_zone  = string
  })
  default = null

  validation {
    condition     = var.scale_down_schedule == null || (can(regex("^cron\\(", var.scale_down_schedule.stop_cron)) && can(regex("^cron\\(", var.scale_down_schedule.start_cron)))
    error_message = "stop_cron and start_cron must be cron(...) expressions."
  }
}

variable "cpu_target_percent" {
  description = "Target average CPU of the service (the seed: 70)."
  type        = number
  default     = 70

  validation {
    condition     = var.cpu_target_percent >= 20 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be 20-90."
  }
}

variable "memory_target_percent" {
  description = "Target average memory of the service (the seed: 80)."
  type        = number
  default     = 80

  validation {
    condition     = var.memory_target_percent >= 20 && var.memory_target_percent <= 90
    error_message = "memory_target_percent must be 20-90."
  }
}

# Per-task capacity, requests per second each scenario sustains on one task of
# task_cpu. Not measured on a half-core task yet (loadtests/RESULTS.md will hold
# those figures); until then each default is derived from a figure measured on
# this project's machines, as stated per field. Replace them with measured values.
variable "per_task_capacity_rps" {
  description = <<-EOT
    Requests/s one task sustains per scenario. Defaults derived, not measured on a task:
    login and register = 0.5 vCPU / 39 ms per Argon2id hash (the slowest hash measured, 19-39 ms) ~ 12;
    refresh = RS256 signing 2,300/s on two cores (slowest measured) -> 575/s per half core, x 0.6 (the refresh target on PostgreSQL + Redis) ~ 345;
    me = a trivial actix-web handler, 35,000/s on two cores with the load generator on the same box -> 8,750 per half core, x 0.5 (the GET /me target) ~ 4,375.
  EOT
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
  description = "Share of requests per scenario (an assumption until production traffic is measured: mostly token checks and refreshes, some logins, few registrations). Must sum to 1."
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
    condition     = abs(sum(values(var.traffic_mix)) - 1) < 0.001 && alltrue([for v in values(var.traffic_mix) : v >= 0])
    error_message = "traffic_mix shares must be non-negative and sum to 1."
  }
}

variable "request_target_utilization" {
  description = "Fraction of a task's mixed capacity the request-count policy aims at."
  type        = number
  default     = 0.7

  validation {
    condition     = var.request_target_utilization > 0.2 && var.request_target_utilization <= 0.9
    error_message = "request_target_utilization must be in (0.2, 0.9]."
  }
}

variable "latency_p95_threshold_ms" {
  description = "p95 target response time above which tasks are added (the seed: 200 ms)."
  type        = number
  default     = 200

  validation {
    condition     = var.latency_p95_threshold_ms >= 50 && var.latency_p95_threshold_ms <= 5000
    error_message = "latency_p95_threshold_ms must be 50-5000."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
