# staging: production's shape at a smaller size; first task on-demand, the
# rest on Spot; stopped at night and at weekends.
environment = "staging"
aws_region  = "us-east-1"
domain_name = "auth-staging.suma-finance.com"
zone_name   = "suma-finance.com"

image_repository = "000000000000.dkr.ecr.us-east-1.amazonaws.com/suma-auth"

network = {
  cidr         = "10.30.0.0/16"
  az_count     = 2
  nat_gateways = "single"
}

service = {
  min_capacity       = 2
  max_capacity       = 6
  fargate_spot       = "mixed"
  log_retention_days = 30
  scale_down_schedule = {
    stop_cron  = "cron(0 21 ? * MON-FRI *)"
    start_cron = "cron(0 6 ? * MON-FRI *)"
    time_zone  = "Europe/Lisbon"
  }
}

database = {
  instance_class        = "db.t4g.small"
  allocated_storage     = 20
  max_allocated_storage = 100
  multi_az              = false
  backup_retention_days = 7
  deletion_protection   = false
  max_connections       = 150
  log_retention_days    = 30
  performance_insights  = false # not offered on the smallest classes
}

redis = {
  node_type               = "cache.t4g.small"
  num_cache_clusters      = 2
  multi_az                = true
  snapshot_retention_days = 3
}

backup = {
  daily_retention_days  = 14
  weekly_retention_days = 90
}

monitoring = {
  notify_critical  = ["@slack-platform-alerts-staging"]
  notify_security  = ["@slack-security-alerts-staging"]
  runbook_base_url = "https://github.com/suma-finance/suma-auth/blob/main/deploy/runbooks"
}
