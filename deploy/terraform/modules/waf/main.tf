# A CLOUDFRONT-scope web ACL (the caller passes the us-east-1 provider). The
# seed put a REGIONAL ACL on the ALB behind CloudFront, where every request comes
# from a CloudFront address: per-IP limits would have counted edges, not
# clients, and aggregating on X-Forwarded-For would use its first entry, which
# the client writes. At the edge the source IP is the viewer's own.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  path_keys = sort(keys(var.path_rate_limits))

  # Rules of the managed groups that inspect the request body. The API's bodies
  # are JSON holding passwords, which may contain anything ("' OR 1=1 --",
  # "<script>", "../"): these rules count instead of blocking. The server never
  # builds SQL, HTML or paths from a body.
  managed_groups = {
    AWSManagedRulesCommonRuleSet = {
      priority    = 10
      count_rules = ["CrossSiteScripting_BODY", "GenericLFI_BODY", "GenericRFI_BODY", "EC2MetaDataSSRF_BODY"]
    }
    AWSManagedRulesKnownBadInputsRuleSet = {
      priority    = 20
      count_rules = ["JavaDeserializationRCE_BODY", "Log4JRCE_BODY"]
    }
    AWSManagedRulesSQLiRuleSet = {
      priority    = 30
      count_rules = ["SQLi_BODY", "SQLiExtendedPatterns_BODY"]
    }
    AWSManagedRulesAnonymousIpList = {
      priority    = 40
      count_rules = []
    }
  }
}

# Ranges blocked during an incident (empty normally).
resource "aws_wafv2_ip_set" "blocked" {
  name               = "${var.name_prefix}-blocked"
  description        = "Client ranges blocked during an incident"
  scope              = "CLOUDFRONT"
  ip_address_version = "IPV4"
  addresses          = var.blocked_ipv4_cidrs
  tags               = var.tags
}

resource "aws_wafv2_web_acl" "this" {
  name        = "${var.name_prefix}-edge"
  description = "suma-auth edge backstop: coarse per-IP rate limits and managed rules"
  scope       = "CLOUDFRONT"

  default_action {
    allow {}
  }

  dynamic "rule" {
    for_each = local.path_keys
    content {
      name     = "rate-${replace(rule.value, "_", "-")}"
      priority = index(local.path_keys, rule.value) + 1

      action {
        block {}
      }

      statement {
        rate_based_statement {
          limit                 = var.path_rate_limits[rule.value].limit
          evaluation_window_sec = var.evaluation_window_sec
          aggregate_key_type    = "IP"

          scope_down_statement {
            and_statement {
              # POST only, as the server limits: CORS preflights are not attempts.
              statement {
                byte_match_statement {
                  search_string         = "POST"
                  positional_constraint = "EXACTLY"
                  field_to_match {
                    method {}
                  }
                  text_transformation {
                    priority = 0
                    type     = "NONE"
                  }
                }
              }
              # A prefix, so that sub-routes (/otp/send, /otp/verify,
              # /password-reset/confirm) and trailing slashes are covered;
              # decoded and normalised first so that %2F or ./ cannot dodge it.
              statement {
                byte_match_statement {
                  search_string         = var.path_rate_limits[rule.value].path
                  positional_constraint = "STARTS_WITH"
                  field_to_match {
                    uri_path {}
                  }
                  text_transformation {
                    priority = 0
                    type     = "URL_DECODE"
                  }
                  text_transformation {
                    priority = 1
                    type     = "NORMALIZE_PATH"
                  }
                  text_transformation {
                    priority = 2
                    type     = "LOWERCASE"
                  }
                }
              }
            }
          }
        }
      }

      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${var.name_prefix}-rate-${replace(rule.value, "_", "-")}"
        sampled_requests_enabled   = true
      }
    }
  }

  rule {
    name     = "blocked-ranges"
    priority = 0

    action {
      block {}
    }

    statement {
      ip_set_reference_statement {
        arn = aws_wafv2_ip_set.blocked.arn
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name_prefix}-blocked-ranges"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "rate-per-ip"
    priority = 9

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit                 = var.ip_rate_limit
        evaluation_window_sec = var.evaluation_window_sec
        aggregate_key_type    = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name_prefix}-rate-per-ip"
      sampled_requests_enabled   = true
    }
  }

  dynamic "rule" {
    for_each = local.managed_groups
    content {
      name     = rule.key
      priority = rule.value.priority

      override_action {
        none {}
      }

      statement {
        managed_rule_group_statement {
          vendor_name = "AWS"
          name        = rule.key

          dynamic "rule_action_override" {
            for_each = rule.value.count_rules
            content {
              name = rule_action_override.value
              action_to_use {
                count {}
              }
            }
          }
        }
      }

      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${var.name_prefix}-${rule.key}"
        sampled_requests_enabled   = true
      }
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${var.name_prefix}-edge"
    sampled_requests_enabled   = true
  }

  tags = var.tags
}

resource "aws_kms_key" "logs" {
  description             = "${var.name_prefix} WAF logs"
  deletion_window_in_days = 30
  enable_key_rotation     = true

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${data.aws_region.current.name}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:*"
          }
        }
      }
    ]
  })

  tags = var.tags
}

# WAF requires the aws-waf-logs- prefix.
resource "aws_cloudwatch_log_group" "waf" {
  name              = "aws-waf-logs-${var.name_prefix}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn

  tags = var.tags
}

# Lets WAF's log delivery write to the group (WAF would try to create this
# policy itself at the first apply, with the caller's permissions).
resource "aws_cloudwatch_log_resource_policy" "waf" {
  policy_name = "${var.name_prefix}-waf-logs"
  policy_document = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "delivery.logs.amazonaws.com" }
      Action    = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource  = "${aws_cloudwatch_log_group.waf.arn}:*"
      Condition = {
        ArnLike      = { "aws:SourceArn" = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:*" }
        StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id }
      }
    }]
  })
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]

  # Bearer tokens and cookies never reach the log.
  redacted_fields {
    single_header {
      name = "authorization"
    }
  }

  redacted_fields {
    single_header {
      name = "cookie"
    }
  }

  depends_on = [aws_cloudwatch_log_resource_policy.waf]

  logging_filter {
    default_behavior = "DROP"

    filter {
      behavior    = "KEEP"
      requirement = "MEETS_ANY"

      condition {
        action_condition {
          action = "BLOCK"
        }
      }

      condition {
        action_condition {
          action = "COUNT"
        }
      }
    }
  }
}
