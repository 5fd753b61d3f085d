data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region          = data.aws_region.current.name
  app_container   = "suma-auth"
  agent_container = "datadog-agent"
  image           = "${var.image_repository}:${var.image_tag}"

  # Every variable this deployment sets for the server; "" means "not set".
  # tests/infra/test_deploy.py checks these names against `suma-auth env --json`
  # (each must be one the server reads, every production-required one set).
  app_environment_all = {
    ENVIRONMENT              = var.environment
    LOG_LEVEL                = var.log_level
    PORT                     = tostring(var.container_port)
    PUBLIC_URL               = var.public_url
    TRUSTED_PROXIES          = join(",", var.trusted_proxies)
    SHUTDOWN_TIMEOUT_SECONDS = tostring(var.shutdown_timeout_seconds)
    # The RDS address: the instance's `endpoint` attribute is host:port.
    DB_HOST        = var.database.address
    DB_PORT        = tostring(var.database.port)
    DB_NAME        = var.database.name
    DB_SSLMODE     = "verify-full"
    DB_SSLROOTCERT = var.rds_ca_bundle_pem
    DB_POOL_SIZE   = tostring(var.db_pool_size)
    # Cluster mode is disabled: the primary endpoint, over TLS.
    REDIS_ENDPOINT             = "rediss://${var.redis.primary_endpoint}:${var.redis.port}"
    SMTP_PORT                  = tostring(var.smtp_port)
    MAIL_FROM                  = var.mail_from == null ? "" : var.mail_from
    JWT_ADDITIONAL_PUBLIC_KEYS = var.jwt_additional_public_keys
    # The agent sidecar shares the task's network namespace.
    DD_AGENT_HOST     = "127.0.0.1"
    DD_DOGSTATSD_PORT = "8125"
    # Unified service tagging. DD_VERSION is the image tag (the git sha); CI
    # renders each new revision with the image and DD_VERSION replaced together
    # (.github/workflows/deploy.yml), so the two never disagree.
    DD_SERVICE = "suma-auth"
    DD_ENV     = var.environment
    DD_VERSION = var.image_tag
  }
  app_environment = { for k, v in local.app_environment_all : k => v if v != "" }

  # Injected by ECS from Secrets Manager at task start. JSON secrets are
  # selected by key (ARN:key::); the seed passed whole JSON documents.
  app_secrets = {
    DB_USER             = "${var.database.app_secret_arn}:username::"
    DB_PASSWORD         = "${var.database.app_secret_arn}:password::"
    REDIS_AUTH_TOKEN    = var.redis.auth_secret_arn
    JWT_PRIVATE_KEY     = "${var.secret_arns["jwt_signing_key"]}:private_key::"
    JWT_PUBLIC_KEY      = "${var.secret_arns["jwt_signing_key"]}:public_key::"
    DATA_ENCRYPTION_KEY = var.secret_arns["data_encryption_key"]
    SENDGRID_API_KEY    = var.secret_arns["mail_relay_api_key"]
  }

  # Liveness: the process answers. Not /ready: ECS replaces a task whose health
  # check fails, and /ready fails on every task at once when the shared database
  # or Redis is down, which no replacement can fix (the server keeps serving from
  # PostgreSQL while Redis is down). The image has no shell or curl.
  health_check_command = ["CMD", "/usr/local/bin/suma-auth", "health", "--url", "http://127.0.0.1:${var.container_port}/health"]

  # ALBRequestCountPerTarget target (requests per task per minute) from the
  # per-task capacity of each scenario weighted by the traffic mix.
  mix_capacity_rps     = 1 / sum([for k, share in var.traffic_mix : share / var.per_task_capacity_rps[k]])
  request_count_target = floor(local.mix_capacity_rps * 60 * var.request_target_utilization)

  capacity_providers = {
    none  = [{ provider = "FARGATE", base = 0, weight = 1 }]
    mixed = [{ provider = "FARGATE", base = 1, weight = 0 }, { provider = "FARGATE_SPOT", base = 0, weight = 1 }]
    all   = [{ provider = "FARGATE_SPOT", base = 0, weight = 1 }]
  }[var.fargate_spot]

  min_capacity = var.service_paused ? 0 : var.min_capacity
  max_capacity = var.service_paused ? 0 : var.max_capacity

  log_options = {
    "awslogs-group"         = aws_cloudwatch_log_group.app.name
    "awslogs-region"        = local.region
    "awslogs-stream-prefix" = "ecs"
    "mode"                  = "non-blocking"
    "max-buffer-size"       = "4m"
  }
}

resource "aws_cloudwatch_log_group" "app" {
  name              = "/ecs/${var.name_prefix}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "admin" {
  name              = "/ecs/${var.name_prefix}/admin"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

# --- Cluster -------------------------------------------------------------------

resource "aws_ecs_cluster" "main" {
  name = var.name_prefix

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name       = aws_ecs_cluster.main.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    base              = 0
    weight            = 1
  }
}

# --- IAM -----------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# Pulls the image, writes logs and reads the service's secrets at task start.
resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-execution-${local.region}"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "execution_secrets" {
  name = "read-service-secrets"
  role = aws_iam_role.execution.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect = "Allow"
        Action = ["secretsmanager:GetSecretValue"]
        Resource = distinct([
          var.database.app_secret_arn,
          var.redis.auth_secret_arn,
          var.secret_arns["jwt_signing_key"],
          var.secret_arns["data_encryption_key"],
          var.secret_arns["mail_relay_api_key"],
          var.secret_arns["datadog_api_key"],
        ])
      },
      {
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = [var.secrets_kms_key_arn]
      }
    ]
  })
}

# The one-off admin tasks also read the RDS master secret; the service does not.
resource "aws_iam_role" "admin_execution" {
  name               = "${var.name_prefix}-admin-exec-${local.region}"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "admin_execution" {
  role       = aws_iam_role.admin_execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "admin_execution_secrets" {
  name = "read-admin-secrets"
  role = aws_iam_role.admin_execution.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = distinct([var.database.master_user_secret_arn, var.database.app_secret_arn, var.redis.auth_secret_arn])
      },
      {
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = distinct([var.secrets_kms_key_arn, var.database.master_kms_key_arn])
      }
    ]
  })
}

# The server calls no AWS API: its task role grants nothing.
resource "aws_iam_role" "task" {
  name               = "${var.name_prefix}-task-${local.region}"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

# --- Service task ----------------------------------------------------------------

resource "aws_ecs_task_definition" "app" {
  #checkov:skip=CKV_AWS_336:The server container's root filesystem is read-only; the Datadog agent sidecar writes its runtime configuration and cannot run read-only
  family                   = var.name_prefix
  network_mode             = "awsvpc"
  requires_compatibilities = ["FARGATE"]
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name      = local.app_container
      image     = local.image
      essential = true

      portMappings = [{
        name          = "http"
        containerPort = var.container_port
        hostPort      = var.container_port
        protocol      = "tcp"
      }]

      environment = [for k in sort(keys(local.app_environment)) : { name = k, value = local.app_environment[k] }]
      secrets     = [for k in sort(keys(local.app_secrets)) : { name = k, valueFrom = local.app_secrets[k] }]

      healthCheck = {
        command     = local.health_check_command
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 20
      }

      # Above the server's drain (SHUTDOWN_TIMEOUT_SECONDS): the seed's 30 s
      # left no margin once the server also flushes its metrics.
      stopTimeout            = var.stop_timeout_seconds
      readonlyRootFilesystem = true
      linuxParameters        = { initProcessEnabled = true }
      ulimits                = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]

      # Starts after the agent and, on shutdown, stops before it, so that the
      # last metrics are delivered.
      dependsOn = [{ containerName = local.agent_container, condition = "START" }]

      logConfiguration = { logDriver = "awslogs", options = local.log_options }
    },
    {
      name              = local.agent_container
      image             = var.datadog_agent_image
      essential         = false
      memoryReservation = 192

      environment = [
        { name = "ECS_FARGATE", value = "true" },
        { name = "DD_SITE", value = var.datadog_site },
        { name = "DD_ENV", value = var.environment },
        { name = "DD_SERVICE", value = "suma-auth" },
        { name = "DD_VERSION", value = var.image_tag },
        { name = "DD_DOGSTATSD_TAG_CARDINALITY", value = "orchestrator" },
        { name = "DD_APM_ENABLED", value = "false" },
        { name = "DD_LOGS_ENABLED", value = "false" },
        { name = "DD_PROCESS_AGENT_ENABLED", value = "false" },
      ]
      secrets = [{ name = "DD_API_KEY", valueFrom = var.secret_arns["datadog_api_key"] }]

      healthCheck = {
        command     = ["CMD", "agent", "health"]
        interval    = 30
        timeout     = 5
        retries     = 3
        startPeriod = 15
      }

      logConfiguration = {
        logDriver = "awslogs"
        options   = merge(local.log_options, { "awslogs-stream-prefix" = "datadog" })
      }
    }
  ])

  tags = var.tags
}

# Orders the service after the listener. (The seed wrote depends_on = [var...],
# which Terraform rejects: depends_on takes resources, not variables.)
resource "terraform_data" "listener" {
  input = var.listener_arn
}

resource "aws_ecs_service" "app" {
  name                   = var.name_prefix
  cluster                = aws_ecs_cluster.main.id
  task_definition        = aws_ecs_task_definition.app.arn
  desired_count          = local.min_capacity
  platform_version       = "LATEST"
  enable_execute_command = false # no shell in the image
  propagate_tags         = "SERVICE"

  enable_ecs_managed_tags            = true
  health_check_grace_period_seconds  = 30
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = var.deployment_maximum_percent

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  dynamic "capacity_provider_strategy" {
    for_each = local.capacity_providers
    content {
      capacity_provider = capacity_provider_strategy.value.provider
      base              = capacity_provider_strategy.value.base
      weight            = capacity_provider_strategy.value.weight
    }
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.tasks_security_group_id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = var.target_group_arn
    container_name   = local.app_container
    container_port   = var.container_port
  }

  tags = var.tags

  lifecycle {
    # Application Auto Scaling owns the task count.
    ignore_changes = [desired_count]

    precondition {
      # Each task holds its pool plus one connection listening for account changes.
      condition     = var.max_capacity * var.deployment_maximum_percent / 100 * (var.db_pool_size + 1) <= 0.9 * var.db_max_connections
      error_message = "max_capacity x deployment_maximum_percent x (db_pool_size + 1) exceeds 90 % of db_max_connections: lower the pool or the fleet, or raise the instance class."
    }
  }

  depends_on = [aws_ecs_cluster_capacity_providers.main, terraform_data.listener]
}

# --- Scaling -------------------------------------------------------------------

resource "aws_appautoscaling_target" "app" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${aws_ecs_service.app.name}"
  min_capacity       = local.min_capacity
  max_capacity       = local.max_capacity
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name_prefix}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.app.service_namespace
  scalable_dimension = aws_appautoscaling_target.app.scalable_dimension
  resource_id        = aws_appautoscaling_target.app.resource_id

  target_tracking_scaling_policy_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
  }
}

resource "aws_appautoscaling_policy" "memory" {
  name               = "${var.name_prefix}-memory"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.app.service_namespace
  scalable_dimension = aws_appautoscaling_target.app.scalable_dimension
  resource_id        = aws_appautoscaling_target.app.resource_id

  target_tracking_scaling_policy_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageMemoryUtilization"
    }
    target_value       = var.memory_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
  }
}

# Requests per task per minute, from the per-task capacity (see variables.tf).
resource "aws_appautoscaling_policy" "requests" {
  name               = "${var.name_prefix}-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.app.service_namespace
  scalable_dimension = aws_appautoscaling_target.app.scalable_dimension
  resource_id        = aws_appautoscaling_target.app.resource_id

  target_tracking_scaling_policy_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${var.alb_arn_suffix}/${var.target_group_arn_suffix}"
    }
    target_value       = local.request_count_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
  }
}

# p95 latency above the threshold for three minutes adds two tasks (the seed's
# response-time trigger). The ALB measures it; no APM is needed.
resource "aws_appautoscaling_policy" "latency" {
  name               = "${var.name_prefix}-latency"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.app.service_namespace
  scalable_dimension = aws_appautoscaling_target.app.scalable_dimension
  resource_id        = aws_appautoscaling_target.app.resource_id

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 60
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = 2
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "latency_p95" {
  alarm_name          = "${var.name_prefix}-p95-latency"
  alarm_description   = "Target p95 response time above ${var.latency_p95_threshold_ms} ms for 3 minutes: scale out"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  extended_statistic  = "p95"
  period              = 60
  evaluation_periods  = 3
  threshold           = var.latency_p95_threshold_ms / 1000
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.latency.arn]

  dimensions = {
    LoadBalancer = var.alb_arn_suffix
    TargetGroup  = var.target_group_arn_suffix
  }

  tags = var.tags
}

# Outside production: nothing runs at night.
resource "aws_appautoscaling_scheduled_action" "stop" {
  count = var.scale_down_schedule == null ? 0 : 1

  name               = "${var.name_prefix}-night-stop"
  service_namespace  = aws_appautoscaling_target.app.service_namespace
  scalable_dimension = aws_appautoscaling_target.app.scalable_dimension
  resource_id        = aws_appautoscaling_target.app.resource_id
  schedule           = var.scale_down_schedule.stop_cron
  timezone           = var.scale_down_schedule.time_zone

  scalable_target_action {
    min_capacity = 0
    max_capacity = 0
  }
}

resource "aws_appautoscaling_scheduled_action" "start" {
  count = var.scale_down_schedule == null ? 0 : 1

  name               = "${var.name_prefix}-morning-start"
  service_namespace  = aws_appautoscaling_target.app.service_namespace
  scalable_dimension = aws_appautoscaling_target.app.scalable_dimension
  resource_id        = aws_appautoscaling_target.app.resource_id
  schedule           = var.scale_down_schedule.start_cron
  timezone           = var.scale_down_schedule.time_zone

  scalable_target_action {
    min_capacity = local.min_capacity
    max_capacity = local.max_capacity
  }

  depends_on = [aws_appautoscaling_scheduled_action.stop]
}
