locals {
  zone_id       = var.create_zone ? aws_route53_zone.main[0].zone_id : data.aws_route53_zone.main[0].zone_id
  origin_domain = "origin.${var.domain_name}"
}

resource "aws_route53_zone" "main" {
  #checkov:skip=CKV2_AWS_38:DNSSEC signing needs a KMS key in us-east-1 and a DS record at the registrar, a decision for the whole domain; not configured here
  #checkov:skip=CKV2_AWS_39:Query logging of a public zone adds nothing the CloudFront and ALB logs do not have
  count = var.create_zone ? 1 : 0
  name  = var.zone_name
  tags  = var.tags
}

data "aws_route53_zone" "main" {
  count        = var.create_zone ? 0 : 1
  name         = var.zone_name
  private_zone = false
}

# --- Certificates ----------------------------------------------------------------

# Viewer certificate: CloudFront takes certificates from us-east-1 only.
resource "aws_acm_certificate" "edge" {
  count             = var.public_records ? 1 : 0
  provider          = aws.us_east_1
  domain_name       = var.domain_name
  validation_method = "DNS"
  tags              = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

# Origin certificate: the ALB's HTTPS listener, in the service's region.
resource "aws_acm_certificate" "origin" {
  domain_name       = local.origin_domain
  validation_method = "DNS"
  tags              = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  validation_options = merge(
    { for o in aws_acm_certificate.origin.domain_validation_options : o.domain_name => o },
    var.public_records ? { for o in aws_acm_certificate.edge[0].domain_validation_options : o.domain_name => o } : {},
  )
}

resource "aws_route53_record" "validation" {
  for_each = local.validation_options

  zone_id = local.zone_id
  name    = each.value.resource_record_name
  type    = each.value.resource_record_type
  records = [each.value.resource_record_value]
  ttl     = 300
  # The same record validates this name in every region and deployment.
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "edge" {
  count                   = var.public_records ? 1 : 0
  provider                = aws.us_east_1
  certificate_arn         = aws_acm_certificate.edge[0].arn
  validation_record_fqdns = [aws_route53_record.validation[var.domain_name].fqdn]
}

resource "aws_acm_certificate_validation" "origin" {
  certificate_arn         = aws_acm_certificate.origin.arn
  validation_record_fqdns = [aws_route53_record.validation[local.origin_domain].fqdn]
}

# --- Records -----------------------------------------------------------------------

resource "aws_route53_record" "public_a" {
  count   = var.public_records ? 1 : 0
  zone_id = local.zone_id
  name    = var.domain_name
  type    = "A"
  alias {
    name                   = var.cloudfront_domain_name
    zone_id                = var.cloudfront_hosted_zone_id
    evaluate_target_health = false
  }
}

resource "aws_route53_record" "public_aaaa" {
  count   = var.public_records ? 1 : 0
  zone_id = local.zone_id
  name    = var.domain_name
  type    = "AAAA"
  alias {
    name                   = var.cloudfront_domain_name
    zone_id                = var.cloudfront_hosted_zone_id
    evaluate_target_health = false
  }
}

# CloudFront's origin. A region failover deployment overwrites this record with
# its own ALB (allow_overwrite), which moves all traffic without touching the edge.
resource "aws_route53_record" "origin" {
  zone_id         = local.zone_id
  name            = local.origin_domain
  type            = "A"
  allow_overwrite = true
  alias {
    name                   = var.alb_dns_name
    zone_id                = var.alb_zone_id
    evaluate_target_health = true
  }
}
