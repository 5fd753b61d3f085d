variable "name_prefix" {
  description = "Prefix of every resource name, e.g. suma-auth-production."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name_prefix))
    error_message = "name_prefix must be 3-31 lowercase letters, digits or dashes, starting with a letter."
  }
}

# The server enforces the real limits per client IP and route (RATE_LIMIT_LOGIN 5,
# RATE_LIMIT_REGISTER 3, RATE_LIMIT_PASSWORD_RESET 3, RATE_LIMIT_OTP 5 per
# RATE_LIMIT_WINDOW_SECONDS 300), identically on every task through Redis. The
# WAF cannot express them (its smallest limit is 10 per window): these rules are
# a coarse backstop that stops floods at the edge before they cost a task anything.
variable "path_rate_limits" {
  description = "Per-client-IP limits on POSTs to path prefixes, per evaluation window. Each path must be a prefix of a route the server mounts."
  type = map(object({
    path  = string
    limit = number
  }))
  default = {
    login          = { path = "/api/v1/auth/login", limit = 10 }
    register       = { path = "/api/v1/auth/register", limit = 10 }
    password_reset = { path = "/api/v1/auth/password-reset", limit = 10 }
    otp            = { path = "/api/v1/auth/otp/", limit = 10 }
  }

  validation {
    condition     = alltrue([for k, v in var.path_rate_limits : v.limit >= 10 && v.limit <= 2000000000])
    error_message = "Every limit must be at least 10, AWS WAF's minimum for a rate-based rule."
  }

  validation {
    condition     = alltrue([for k, v in var.path_rate_limits : startswith(v.path, "/api/v1/auth/")])
    error_message = "Every path must be under /api/v1/auth/."
  }

  validation {
    condition     = alltrue([for k, v in var.path_rate_limits : can(regex("^[a-z_]{1,40}$", k))])
    error_message = "Rule keys must be lowercase words with underscores."
  }
}

variable "evaluation_window_sec" {
  description = "Window of the rate-based rules (the server's RATE_LIMIT_WINDOW_SECONDS is 300)."
  type        = number
  default     = 300

  validation {
    condition     = contains([60, 120, 300, 600], var.evaluation_window_sec)
    error_message = "evaluation_window_sec must be 60, 120, 300 or 600."
  }
}

variable "ip_rate_limit" {
  description = "Requests per client IP per evaluation window across all paths (the seed's 1000)."
  type        = number
  default     = 1000

  validation {
    condition     = var.ip_rate_limit >= 100
    error_message = "ip_rate_limit must be at least 100: clients behind one NAT share an address."
  }
}

variable "blocked_ipv4_cidrs" {
  description = "Client ranges blocked outright (incident response: runbooks/incident-response.md). Empty normally."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.blocked_ipv4_cidrs : can(cidrhost(c, 0)) && !strcontains(c, ":")])
    error_message = "blocked_ipv4_cidrs must be IPv4 CIDRs."
  }
}

variable "log_retention_days" {
  description = "Retention of the WAF log group (blocked and counted requests only)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value up to a year."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
