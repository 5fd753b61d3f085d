# Datadog dashboard and monitors over what the server emits (`suma-auth metrics
# --json`; tests/infra/test_deploy.py checks every auth.* name and tag used here
# against that catalogue) plus the AWS integration's aws.* metrics. Latency
# comes from the server's own distribution auth.endpoint.duration (milliseconds):
# no APM tracer is needed (the seed queried trace.http.request.duration).

locals {
  # Unified service tagging: the server tags every metric with service and env.
  f = "service:${var.service},env:${var.environment}"
  t = var.thresholds

  critical = join(" ", var.notify_critical)
  security = join(" ", var.notify_security)
  runbook  = "${var.runbook_base_url}/incident-response.md"

  # Every monitor: query (without its comparison), comparison, thresholds,
  # whether missing data alerts, who is told and the runbook section.
  monitors = {
    for k, v in merge(local.base_monitors, local.running_tasks_monitor, local.no_traffic_monitor) : k => v
    if !(k == "running_tasks" && var.expected_min_tasks == null) && !(k == "no_traffic" && !var.expect_constant_traffic)
  }

  base_monitors = {
    error_rate = {
      name = "5xx error rate"
      # default_zero: no error series at all is a 0 % rate, not missing data.
      query          = "sum(last_5m):100 * default_zero(sum:auth.endpoint.errors{${local.f},status_class:5xx}.as_count()) / sum:auth.endpoint.requests{${local.f}}.as_count()"
      op             = ">"
      critical       = local.t.error_rate_percent
      warning        = local.t.error_rate_percent / 2.5
      notify_no_data = false # no requests is not an error rate (see no_traffic)
      notify         = local.critical
      section        = "5xx-error-rate"
    }
    latency_p95 = {
      name           = "p95 latency"
      query          = "avg(last_10m):p95:auth.endpoint.duration{${local.f}}"
      op             = ">"
      critical       = local.t.latency_p95_ms
      warning        = local.t.latency_p95_ms * 0.75
      notify_no_data = false
      notify         = local.critical
      section        = "latency"
    }
    failed_logins = {
      name           = "Failed login spike"
      query          = "sum(last_15m):sum:auth.login.failure{${local.f}}.as_count()"
      op             = ">"
      critical       = local.t.failed_logins_15m
      warning        = local.t.failed_logins_15m / 2
      notify_no_data = false
      notify         = local.security
      section        = "failed-login-or-lockout-spike"
    }
    lockouts = {
      name           = "Account lockout spike"
      query          = "sum(last_30m):sum:auth.account_lockout{${local.f}}.as_count()"
      op             = ">"
      critical       = local.t.lockouts_30m
      warning        = local.t.lockouts_30m / 2
      notify_no_data = false
      notify         = local.security
      section        = "failed-login-or-lockout-spike"
    }
    refresh_reuse = {
      name           = "Refresh-token reuse"
      query          = "sum(last_15m):sum:auth.refresh_token_reuse{${local.f}}.as_count()"
      op             = ">"
      critical       = local.t.refresh_reuse_15m
      warning        = 1
      notify_no_data = false
      notify         = local.security
      section        = "refresh-token-reuse"
    }
    hash_pool = {
      name           = "Password hashing pool saturated (503s)"
      query          = "sum(last_5m):sum:auth.hash_pool.rejected{${local.f}}.as_count()"
      op             = ">"
      critical       = local.t.hash_rejections_5m
      warning        = 1
      notify_no_data = false
      notify         = local.critical
      section        = "hashing-pool-saturated"
    }
    outbox_age = {
      name           = "Mail outbox not draining"
      query          = "max(last_15m):max:auth.mail.outbox.age{${local.f}}"
      op             = ">"
      critical       = local.t.outbox_age_seconds
      warning        = local.t.outbox_age_seconds / 2
      notify_no_data = false
      notify         = local.critical
      section        = "mail-outbox"
    }
    outbox_depth = {
      name           = "Mail outbox depth"
      query          = "max(last_15m):max:auth.mail.outbox.depth{${local.f}}"
      op             = ">"
      critical       = local.t.outbox_depth
      warning        = local.t.outbox_depth / 2
      notify_no_data = false
      notify         = local.critical
      section        = "mail-outbox"
    }
    outbox_dead = {
      name           = "Mail dead letters"
      query          = "sum(last_30m):sum:auth.mail.failed{${local.f}} by {template}.as_count()"
      op             = ">"
      critical       = 0
      warning        = null
      notify_no_data = false
      notify         = local.critical
      section        = "mail-outbox"
    }
    actor_mailboxes = {
      name           = "Actor mailboxes refusing messages"
      query          = "change(max(last_10m),last_10m):max:auth.actors.mailbox_rejections{${local.f}} by {task_arn}"
      op             = ">"
      critical       = 100
      warning        = 0
      notify_no_data = false
      notify         = local.critical
      section        = "actor-mailboxes"
    }
    db_pool = {
      name           = "PostgreSQL pool exhausted on a task"
      query          = "min(last_10m):min:auth.db.pool.connections{${local.f}} by {task_arn} - min:auth.db.pool.idle{${local.f}} by {task_arn}"
      op             = ">="
      critical       = var.db_pool_size
      warning        = null
      notify_no_data = false
      notify         = local.critical
      section        = "connection-pools"
    }
    redis_pool = {
      name           = "Redis pool exhausted on a task"
      query          = "min(last_10m):min:auth.redis.pool.connections{${local.f}} by {task_arn} - min:auth.redis.pool.idle{${local.f}} by {task_arn}"
      op             = ">="
      critical       = var.redis_pool_size
      warning        = null
      notify_no_data = false
      notify         = local.critical
      section        = "connection-pools"
    }
    dependency_down = {
      name  = "Database or Redis unreachable"
      query = "max(last_5m):min:auth.dependency.up{${local.f}} by {dependency}"
      op    = "<"
      # Every task reports this gauge on a timer, traffic or not: missing
      # data means no task is reporting, where tasks always run.
      critical       = 1
      warning        = null
      notify_no_data = var.expected_min_tasks != null
      notify         = local.critical
      section        = "database-or-redis-unreachable"
    }
    rds_connections = {
      name           = "RDS connections near max_connections"
      query          = "avg(last_5m):avg:aws.rds.database_connections{dbinstanceidentifier:${var.rds_instance_id}}"
      op             = ">"
      critical       = floor(var.db_max_connections * local.t.db_connections_fraction)
      warning        = floor(var.db_max_connections * local.t.db_connections_fraction * 0.75)
      notify_no_data = false
      notify         = local.critical
      section        = "connection-pools"
    }
    redis_memory = {
      name = "Redis memory high"
      # maxmemory-policy is noeviction: at 100 % writes fail.
      query          = "avg(last_10m):avg:aws.elasticache.database_memory_usage_percentage{cacheclusterid:${var.redis_replication_group_id}-*} by {cacheclusterid}"
      op             = ">"
      critical       = local.t.redis_memory_percent
      warning        = local.t.redis_memory_percent - 10
      notify_no_data = false
      notify         = local.critical
      section        = "redis-memory"
    }
  }

  running_tasks_monitor = {
    running_tasks = {
      name           = "Running tasks below minimum"
      query          = "avg(last_5m):avg:aws.ecs.service.running{clustername:${var.ecs_cluster_name},servicename:${var.ecs_service_name}}"
      op             = "<"
      critical       = var.expected_min_tasks
      warning        = null
      notify_no_data = true # reported by ECS whatever the traffic
      notify         = local.critical
      section        = "running-tasks-below-minimum"
    }
  }

  no_traffic_monitor = {
    no_traffic = {
      name           = "No requests reach the service"
      query          = "sum(last_15m):sum:auth.endpoint.requests{${local.f}}.as_count()"
      op             = "<"
      critical       = 1
      warning        = null
      notify_no_data = true # production always has traffic
      notify         = local.critical
      section        = "no-traffic"
    }
  }
}

resource "datadog_monitor" "this" {
  for_each = local.monitors

  name    = "[suma-auth ${var.environment}] ${each.value.name}"
  type    = "query alert"
  query   = "${each.value.query} ${each.value.op} ${each.value.critical}"
  message = <<-EOT
    {{#is_alert}}${each.value.name}: {{value}} (threshold ${each.value.critical}).{{/is_alert}}
    {{#is_warning}}${each.value.name} is rising: {{value}}.{{/is_warning}}
    {{#is_no_data}}No data for ${each.value.name}: no task is reporting.{{/is_no_data}}
    Runbook: ${local.runbook}#${each.value.section}
    ${each.value.notify}
  EOT

  monitor_thresholds {
    critical = each.value.critical
    warning  = each.value.warning
  }

  notify_no_data      = each.value.notify_no_data
  no_data_timeframe   = each.value.notify_no_data ? 15 : null
  require_full_window = false
  include_tags        = true
  renotify_interval   = 60

  tags = concat(var.tags, ["service:${var.service}", "env:${var.environment}", "monitor:${each.key}"])
}

# Percentiles (p95 above) exist for a distribution only when enabled; this also
# names the tags that stay queryable.
resource "datadog_metric_tag_configuration" "endpoint_duration" {
  count               = var.manage_metric_configuration ? 1 : 0
  metric_name         = "auth.endpoint.duration"
  metric_type         = "distribution"
  tags                = ["endpoint", "method", "status_class", "env", "service", "version"]
  include_percentiles = true
}

resource "datadog_dashboard_json" "service" {
  dashboard = templatefile("${path.module}/dashboards/service.json.tftpl", {
    environment        = var.environment
    service            = var.service
    ecs_cluster_name   = var.ecs_cluster_name
    ecs_service_name   = var.ecs_service_name
    rds_instance_id    = var.rds_instance_id
    redis_group_id     = var.redis_replication_group_id
    db_max_connections = var.db_max_connections
  })
}
