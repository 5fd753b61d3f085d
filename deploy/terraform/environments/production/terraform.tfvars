# production: three zones, on-demand only, always on, recovery in us-west-2.
environment = "production"
aws_region  = "us-east-1"
domain_name = "auth.suma-finance.com"
zone_name   = "suma-finance.com"

image_repository = "000000000000.dkr.ecr.us-east-1.amazonaws.com/suma-auth"

network = {
  cidr         = "10.10.0.0/16"
  az_count     = 3
  nat_gateways = "per_az"
}

service = {
  min_capacity       = 3
  max_capacity       = 20
  fargate_spot       = "none"
  log_retention_days = 90
}

database = {
  instance_class        = "db.t4g.medium"
  allocated_storage     = 50
  max_allocated_storage = 200
  multi_az              = true
  backup_retention_days = 30
  deletion_protection   = true
  max_connections       = 400
  log_retention_days    = 365
}

redis = {
  node_type               = "cache.t4g.medium"
  num_cache_clusters      = 3
  multi_az                = true
  snapshot_retention_days = 7
}

edge = {
  price_class = "PriceClass_All"
}

backup = {
  daily_retention_days  = 35
  weekly_retention_days = 365
}

recovery = {
  region   = "us-west-2"
  vpc_cidr = "10.110.0.0/16"
  az_count = 2
}

monitoring = {
  notify_critical             = ["@pagerduty-platform", "@slack-platform-alerts"]
  notify_security             = ["@pagerduty-security", "@slack-security-alerts"]
  runbook_base_url            = "https://github.com/suma-finance/suma-auth/blob/main/deploy/runbooks"
  expect_constant_traffic     = true
  manage_metric_configuration = true
}
