variable "domain_name" {
  description = "Public host name of the API, e.g. auth.suma-finance.com."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be a lowercase DNS name."
  }
}

variable "zone_name" {
  description = "Route 53 hosted zone holding domain_name, e.g. suma-finance.com."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.zone_name))
    error_message = "zone_name must be a lowercase DNS name without the trailing dot."
  }
}

variable "create_zone" {
  description = "Create the hosted zone (then delegate it at the registrar: output name_servers) instead of using an existing one."
  type        = bool
  default     = false
}

variable "public_records" {
  description = "Manage the CloudFront certificate and the public alias records (false in a region failover deployment, where the edge stays as it is)."
  type        = bool
  default     = true
}

variable "cloudfront_domain_name" {
  description = "The distribution's *.cloudfront.net name (null when public_records is false)."
  type        = string
  default     = null
}

variable "cloudfront_hosted_zone_id" {
  description = "CloudFront's hosted zone id (null when public_records is false)."
  type        = string
  default     = null
}

variable "alb_dns_name" {
  description = "The ALB's DNS name."
  type        = string
}

variable "alb_zone_id" {
  description = "The ALB's hosted zone id."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
