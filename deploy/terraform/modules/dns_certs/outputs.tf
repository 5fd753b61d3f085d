output "edge_certificate_arn" {
  description = "Validated us-east-1 certificate of domain_name (null when public_records is false)."
  value       = one(aws_acm_certificate_validation.edge[*].certificate_arn)
}

output "origin_certificate_arn" {
  description = "Validated regional certificate of the origin host name."
  value       = aws_acm_certificate_validation.origin.certificate_arn
}

output "origin_domain_name" {
  description = "Host name CloudFront connects to (alias of the ALB)."
  value       = local.origin_domain
}

output "zone_id" {
  description = "Hosted zone id."
  value       = local.zone_id
}

output "name_servers" {
  description = "Name servers to delegate to at the registrar (only when the zone is created here)."
  value       = var.create_zone ? aws_route53_zone.main[0].name_servers : []
}
