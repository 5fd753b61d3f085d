data "aws_cloudfront_cache_policy" "disabled" {
  name = "Managed-CachingDisabled"
}

data "aws_cloudfront_cache_policy" "origin_headers" {
  name = "Managed-UseOriginCacheControlHeaders"
}

# Forwards every viewer header (Authorization included, which CloudFront allows
# only when caching is disabled) except Host: the ALB's certificate names the
# origin host.
data "aws_cloudfront_origin_request_policy" "all_viewer_except_host" {
  name = "Managed-AllViewerExceptHostHeader"
}

data "aws_canonical_user_id" "current" {}

# --- Edge access logs (standard logging writes with bucket ACLs) -------------

#trivy:ignore:AVD-AWS-0089 This is the access-log bucket; logging it into itself would loop
resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log bucket; logging it into itself would loop
  #checkov:skip=CKV_AWS_144:Access logs need no second-region copy
  #checkov:skip=CKV_AWS_145:CloudFront standard logging cannot write to SSE-KMS buckets
  #checkov:skip=CKV2_AWS_62:Nothing consumes events of this bucket
  bucket_prefix = "${var.name_prefix}-edge-logs-"
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  #checkov:skip=CKV2_AWS_65:CloudFront standard logging delivers through the bucket ACL (awslogsdelivery), which BucketOwnerEnforced would disable
  bucket = aws_s3_bucket.logs.id
  rule {
    object_ownership = "BucketOwnerPreferred"
  }
}

resource "aws_s3_bucket_acl" "logs" {
  bucket = aws_s3_bucket.logs.id
  access_control_policy {
    owner {
      id = data.aws_canonical_user_id.current.id
    }
    grant {
      grantee {
        id   = data.aws_canonical_user_id.current.id
        type = "CanonicalUser"
      }
      permission = "FULL_CONTROL"
    }
    # The awslogsdelivery account CloudFront writes standard logs with.
    grant {
      grantee {
        id   = "c4c1ede66af53448b93c283ce9448c4ba468c9432aa01d700d3878632f77d2d0"
        type = "CanonicalUser"
      }
      permission = "FULL_CONTROL"
    }
  }
  depends_on = [aws_s3_bucket_ownership_controls.logs]
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

#trivy:ignore:AVD-AWS-0132 CloudFront standard logging cannot write to SSE-KMS buckets
resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    id     = "expire"
    status = "Enabled"
    filter {}
    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

# --- Headers -------------------------------------------------------------------

# The server already sends these on every response; override = false keeps its
# values and only fills them in on responses CloudFront itself generates.
resource "aws_cloudfront_response_headers_policy" "security" {
  #checkov:skip=CKV_AWS_259:The server sends Strict-Transport-Security (max-age=63072000; includeSubDomains) on every response and this policy keeps it (override = false); preload is decided for the registrable domain, not for this host
  name    = "${var.name_prefix}-security-headers"
  comment = "Security headers the server sends, filled in only where missing"

  security_headers_config {
    strict_transport_security {
      access_control_max_age_sec = 63072000
      include_subdomains         = true
      preload                    = false
      override                   = false
    }
    content_type_options {
      override = false
    }
    frame_options {
      frame_option = "DENY"
      override     = false
    }
    referrer_policy {
      referrer_policy = "no-referrer"
      override        = false
    }
  }
}

# --- Distribution ----------------------------------------------------------------

resource "aws_cloudfront_distribution" "api" {
  #checkov:skip=CKV_AWS_305:An API, not a website: there is no root object to serve
  #checkov:skip=CKV_AWS_310:One origin; a region failover repoints the origin record (runbooks/disaster-recovery.md), and origin groups would only fail over GET/HEAD anyway
  #checkov:skip=CKV2_AWS_46:The origin is an ALB, not an S3 bucket: there is no origin access to configure
  #checkov:skip=CKV2_AWS_47:The distribution's web_acl_id is the WAF module's ACL, which includes AWSManagedRulesKnownBadInputsRuleSet and AWSManagedRulesAnonymousIpList; checkov does not follow the module output
  #checkov:skip=CKV_AWS_374:The service is offered wherever the business operates; geographic restriction is a product decision, not set here
  enabled         = true
  comment         = "${var.name_prefix} API"
  aliases         = [var.domain_name]
  price_class     = var.price_class
  http_version    = "http2and3"
  is_ipv6_enabled = true
  web_acl_id      = var.web_acl_arn

  origin {
    origin_id   = "alb"
    domain_name = var.origin_domain_name

    custom_origin_config {
      http_port                = 80
      https_port               = 443
      origin_protocol_policy   = "https-only"
      origin_ssl_protocols     = ["TLSv1.2"]
      origin_read_timeout      = 30
      origin_keepalive_timeout = 5
    }

    custom_header {
      name  = "X-Origin-Verify"
      value = var.origin_verify
    }
  }

  # Nothing is cached by default: every API answer depends on the caller.
  default_cache_behavior {
    target_origin_id           = "alb"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = data.aws_cloudfront_cache_policy.disabled.id
    origin_request_policy_id   = data.aws_cloudfront_origin_request_policy.all_viewer_except_host.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.security.id
  }

  ordered_cache_behavior {
    path_pattern               = "/api/*"
    target_origin_id           = "alb"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = data.aws_cloudfront_cache_policy.disabled.id
    origin_request_policy_id   = data.aws_cloudfront_origin_request_policy.all_viewer_except_host.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.security.id
  }

  # The key set is public and the server marks it cacheable (max-age=300).
  ordered_cache_behavior {
    path_pattern               = "/.well-known/jwks.json"
    target_origin_id           = "alb"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = data.aws_cloudfront_cache_policy.origin_headers.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.security.id
  }

  # No custom_error_response: the seed replaced 403/404 with /error.html, which
  # would turn the API's problem+json answers into an HTML page.

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    acm_certificate_arn      = var.certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }

  logging_config {
    bucket          = aws_s3_bucket.logs.bucket_domain_name
    prefix          = "edge/"
    include_cookies = false
  }

  tags = var.tags

  depends_on = [aws_s3_bucket_acl.logs]
}
