# Every security group of the service, in one place so that the groups can name
# each other (tasks -> database) without a dependency cycle between modules.

# CloudFront's origin-facing addresses. The ALB accepts nothing else: the seed
# opened 80 and 443 to 0.0.0.0/0, which let anyone bypass CloudFront and the WAF.
data "aws_ec2_managed_prefix_list" "cloudfront" {
  name = "com.amazonaws.global.cloudfront.origin-facing"
}

resource "aws_security_group" "alb" {
  #checkov:skip=CKV2_AWS_5:Attached by the alb, ecs, rds and redis modules through this module's outputs
  name        = "${var.name_prefix}-alb"
  description = "ALB: HTTPS from CloudFront only"
  vpc_id      = aws_vpc.main.id

  tags = merge(var.tags, { Name = "${var.name_prefix}-alb" })
}

# One rule only: a managed prefix list counts its maximum size (about 55 entries)
# against the group's rule quota, so a second rule for port 80 would not fit.
# CloudFront reaches the origin over HTTPS only, and viewers are redirected to
# HTTPS at the edge.
resource "aws_vpc_security_group_ingress_rule" "alb_https_from_cloudfront" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from CloudFront origin-facing addresses"
  prefix_list_id    = data.aws_ec2_managed_prefix_list.cloudfront.id
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the service tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

resource "aws_security_group" "tasks" {
  #checkov:skip=CKV2_AWS_5:Attached by the alb, ecs, rds and redis modules through this module's outputs
  name        = "${var.name_prefix}-tasks"
  description = "ECS tasks of suma-auth (and its one-off admin tasks)"
  vpc_id      = aws_vpc.main.id

  tags = merge(var.tags, { Name = "${var.name_prefix}-tasks" })
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "HTTP from the ALB"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

# Secrets Manager, ECR, CloudWatch Logs, the Datadog intake and the RDS CA
# truststore are HTTPS endpoints outside the VPC.
#trivy:ignore:AVD-AWS-0104 HTTPS only, to AWS APIs (Secrets Manager, ECR, CloudWatch) and the Datadog intake, whose addresses are not fixed
resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs and the Datadog intake"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

# The seed allowed only 443, 5432 and 6379 out, so no mail could leave: the
# server submits to its relay (SendGrid, smtp.sendgrid.net) over SMTP with TLS.
# SendGrid publishes no fixed address range, hence 0.0.0.0/0 on this one port.
#trivy:ignore:AVD-AWS-0104 SMTP submission port only; the relay (SendGrid) publishes no fixed address range
resource "aws_vpc_security_group_egress_rule" "tasks_smtp" {
  security_group_id = aws_security_group.tasks.id
  description       = "SMTP submission (TLS) to the mail relay"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = var.smtp_port
  to_port           = var.smtp_port
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_postgres" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "PostgreSQL"
  referenced_security_group_id = aws_security_group.database.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_redis" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Redis (TLS)"
  referenced_security_group_id = aws_security_group.redis.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "aws_security_group" "database" {
  #checkov:skip=CKV2_AWS_5:Attached by the alb, ecs, rds and redis modules through this module's outputs
  name        = "${var.name_prefix}-database"
  description = "RDS PostgreSQL: from the service tasks only"
  vpc_id      = aws_vpc.main.id

  tags = merge(var.tags, { Name = "${var.name_prefix}-database" })
}

resource "aws_vpc_security_group_ingress_rule" "database_from_tasks" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the service tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_security_group" "redis" {
  #checkov:skip=CKV2_AWS_5:Attached by the alb, ecs, rds and redis modules through this module's outputs
  name        = "${var.name_prefix}-redis"
  description = "ElastiCache Redis: from the service tasks only"
  vpc_id      = aws_vpc.main.id

  tags = merge(var.tags, { Name = "${var.name_prefix}-redis" })
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_tasks" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis from the service tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}
