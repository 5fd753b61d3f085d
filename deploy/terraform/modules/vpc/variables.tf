variable "name_prefix" {
  description = "Prefix of every resource name, e.g. suma-auth-production."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name_prefix))
    error_message = "name_prefix must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "cidr_block" {
  description = "The VPC's IPv4 range; subnets are /24s carved out of it."
  type        = string

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) <= 16
    error_message = "cidr_block must be an IPv4 CIDR of /16 or larger (subnets are /24 at offsets 0-2 and 100-102)."
  }
}

variable "az_count" {
  description = "Availability zones to spread subnets over (the seed uses 3)."
  type        = number
  default     = 3

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 3
    error_message = "az_count must be 2 or 3 (RDS and the ALB need two zones)."
  }
}

variable "availability_zone_suffixes" {
  description = "Zones used, by letter (us-east-1 + a = us-east-1a); the first az_count of them that are available."
  type        = list(string)
  default     = ["a", "b", "c"]

  validation {
    condition     = alltrue([for s in var.availability_zone_suffixes : can(regex("^[a-z]$", s))])
    error_message = "availability_zone_suffixes must be single letters."
  }
}

variable "nat_gateways" {
  description = "NAT gateways: one per zone (\"per_az\", the seed), one shared (\"single\", cheaper outside production) or none."
  type        = string
  default     = "per_az"

  validation {
    condition     = contains(["per_az", "single", "none"], var.nat_gateways)
    error_message = "nat_gateways must be per_az, single or none."
  }
}

variable "flow_logs_retention_days" {
  description = "Retention of the VPC flow log group."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_logs_retention_days)
    error_message = "flow_logs_retention_days must be a CloudWatch Logs retention value."
  }
}

variable "logs_kms_key_arn" {
  description = "KMS key that encrypts CloudWatch log groups."
  type        = string
}

variable "container_port" {
  description = "Port the server listens on (its PORT); the ALB reaches tasks on it."
  type        = number
  default     = 8080

  validation {
    condition     = var.container_port > 1024 && var.container_port < 65536
    error_message = "container_port must be an unprivileged port (1025-65535): the container runs as a non-root user."
  }
}

variable "smtp_port" {
  description = "Port of the mail relay the server submits to (SendGrid's smtp.sendgrid.net:587 by default)."
  type        = number
  default     = 587

  validation {
    condition     = contains([465, 587, 2525], var.smtp_port)
    error_message = "smtp_port must be a TLS submission port: 587 or 2525 (STARTTLS) or 465 (implicit TLS); production refuses plain SMTP."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
