variable "name_prefix" {
  description = "Prefix of every resource name, e.g. suma-auth-production."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,24}$", var.name_prefix))
    error_message = "name_prefix must be 3-25 lowercase letters, digits or dashes (ALB names are at most 32 characters)."
  }
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets of the ALB (two zones at least)."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "An ALB needs subnets in at least two availability zones."
  }
}

variable "security_group_id" {
  description = "Security group of the ALB (HTTPS from CloudFront only)."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate of the origin host name CloudFront connects to."
  type        = string
}

variable "container_port" {
  description = "Port the server listens on (its PORT)."
  type        = number
  default     = 8080

  validation {
    condition     = var.container_port > 1024 && var.container_port < 65536
    error_message = "container_port must be 1025-65535."
  }
}

variable "health_check_path" {
  description = "Target health check path: the server's liveness route (GET /health)."
  type        = string
  default     = "/health"

  validation {
    condition     = contains(["/health", "/ready"], var.health_check_path)
    error_message = "health_check_path must be one of the server's health routes: /health (liveness) or /ready (database and Redis)."
  }
}

variable "deregistration_delay" {
  description = "Seconds a deregistered target keeps its in-flight requests before ECS stops the task (the server then drains for up to SHUTDOWN_TIMEOUT_SECONDS)."
  type        = number
  default     = 30

  validation {
    condition     = var.deregistration_delay >= 0 && var.deregistration_delay <= 300
    error_message = "deregistration_delay must be 0-300 seconds."
  }
}

variable "origin_verify" {
  description = "Value of the X-Origin-Verify header CloudFront adds; requests without it get 403 (the prefix list admits every CloudFront distribution, not only ours)."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.origin_verify) >= 32
    error_message = "origin_verify must be at least 32 characters."
  }
}

variable "deletion_protection" {
  description = "Refuse deletion of the load balancer."
  type        = bool
  default     = true
}

variable "access_log_retention_days" {
  description = "Days access logs are kept (then deleted)."
  type        = number
  default     = 365

  validation {
    condition     = var.access_log_retention_days >= 90
    error_message = "access_log_retention_days must be at least 90 (logs move to Glacier at 90 days)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
