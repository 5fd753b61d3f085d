# dev: smallest footprint, Spot only, stopped at night and at weekends.
# image_tag is passed at apply time: terraform apply -var image_tag=<git sha>
environment = "dev"
aws_region  = "us-east-1"
domain_name = "auth-dev.suma-finance.com"
zone_name   = "suma-finance.com"

# Replace the account id with the bootstrap root's output ecr_repository_url.
image_repository = "000000000000.dkr.ecr.us-east-1.amazonaws.com/suma-auth"

network = {
  cidr         = "10.20.0.0/16"
  az_count     = 2
  nat_gateways = "single"
}

service = {
  min_capacity       = 1
  max_capacity       = 3
  fargate_spot       = "all"
  log_level          = "info,suma_auth=debug"
  log_retention_days = 30
  scale_down_schedule = {
    stop_cron  = "cron(0 20 ? * MON-FRI *)"
    start_cron = "cron(0 7 ? * MON-FRI *)"
    time_zone  = "Europe/Lisbon"
  }
}

database = {
  instance_class        = "db.t4g.micro"
  allocated_storage     = 20
  max_allocated_storage = 50
  multi_az              = false
  backup_retention_days = 7
  deletion_protection   = false
  max_connections       = 80
  log_retention_days    = 30
  performance_insights  = false # not offered on the smallest classes
}

redis = {
  node_type               = "cache.t4g.micro"
  num_cache_clusters      = 2
  multi_az                = false
  snapshot_retention_days = 1
}

backup = {
  daily_retention_days  = 7
  weekly_retention_days = 30
}

monitoring = {
  notify_critical  = ["@slack-suma-auth-dev"]
  notify_security  = ["@slack-suma-auth-dev"]
  runbook_base_url = "https://github.com/suma-finance/suma-auth/blob/main/deploy/runbooks"
}
