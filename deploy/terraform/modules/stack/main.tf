data "aws_region" "current" {}

# CloudFront's origin-facing ranges: the edge hop in X-Forwarded-For.
data "aws_ec2_managed_prefix_list" "cloudfront" {
  name = "com.amazonaws.global.cloudfront.origin-facing"
}

# The RDS certificate authorities of this region, verified by the server
# (DB_SSLMODE=verify-full). Fetched at plan time, so a change shows in the plan.
data "http" "rds_ca" {
  url = "https://truststore.pki.rds.amazonaws.com/${data.aws_region.current.name}/${data.aws_region.current.name}-bundle.pem"

  lifecycle {
    postcondition {
      condition     = self.status_code == 200 && strcontains(self.response_body, "-----BEGIN CERTIFICATE-----")
      error_message = "Could not fetch the RDS CA bundle of this region from truststore.pki.rds.amazonaws.com."
    }
  }
}

locals {
  name_prefix = "suma-auth-${var.environment}"
  failover    = var.failover != null
  recovery    = var.recovery != null && !local.failover
  edge        = var.edge.enabled && !local.failover
  production  = var.environment == "production"

  tags = merge(var.tags, {
    Service     = "suma-auth"
    Environment = var.environment
    ManagedBy   = "terraform"
  })

  network = local.failover ? var.failover.network : {
    vpc_id                     = module.vpc[0].vpc_id
    vpc_cidr                   = module.vpc[0].vpc_cidr
    public_subnet_ids          = module.vpc[0].public_subnet_ids
    private_subnet_ids         = module.vpc[0].private_subnet_ids
    alb_security_group_id      = module.vpc[0].alb_security_group_id
    tasks_security_group_id    = module.vpc[0].tasks_security_group_id
    database_security_group_id = module.vpc[0].database_security_group_id
    redis_security_group_id    = module.vpc[0].redis_security_group_id
  }

  database = local.failover ? {
    address                = data.aws_db_instance.adopted[0].address
    port                   = data.aws_db_instance.adopted[0].port
    name                   = data.aws_db_instance.adopted[0].db_name
    identifier             = data.aws_db_instance.adopted[0].db_instance_identifier
    arn                    = data.aws_db_instance.adopted[0].db_instance_arn
    master_user_secret_arn = data.aws_db_instance.adopted[0].master_user_secret[0].secret_arn
    master_kms_key_arn     = data.aws_db_instance.adopted[0].master_user_secret[0].kms_key_id
    } : {
    address                = module.rds[0].address
    port                   = module.rds[0].port
    name                   = module.rds[0].database_name
    identifier             = module.rds[0].identifier
    arn                    = module.rds[0].arn
    master_user_secret_arn = module.rds[0].master_user_secret_arn
    master_kms_key_arn     = module.rds[0].kms_key_arn
  }

  # The ALB's addresses (in the VPC) and CloudFront's: the server takes the
  # client address as the right-most X-Forwarded-For entry outside these.
  trusted_proxies = concat([local.network.vpc_cidr], sort([for e in data.aws_ec2_managed_prefix_list.cloudfront.entries : e.cidr]))
}

module "secrets" {
  source = "../secrets"
  providers = {
    aws    = aws
    aws.dr = aws.dr
  }

  name_prefix          = local.name_prefix
  recovery_window_days = local.production ? 30 : 7
  replica_region       = local.recovery ? var.recovery.region : null
  adopt_existing       = local.failover
  tags                 = local.tags
}

module "vpc" {
  source = "../vpc"
  count  = local.failover ? 0 : 1

  name_prefix              = local.name_prefix
  cidr_block               = var.network.cidr
  az_count                 = var.network.az_count
  nat_gateways             = var.network.nat_gateways
  logs_kms_key_arn         = module.secrets.logs_kms_key_arn
  flow_logs_retention_days = local.production ? 365 : 30
  tags                     = local.tags
}

# The recovery region's network: where the replica lives now and where a
# failover deployment runs the service (runbooks/disaster-recovery.md).
module "recovery_network" {
  source = "../vpc"
  count  = local.recovery ? 1 : 0
  providers = {
    aws = aws.dr
  }

  name_prefix              = local.name_prefix
  cidr_block               = var.recovery.vpc_cidr
  az_count                 = var.recovery.az_count
  nat_gateways             = "single"
  logs_kms_key_arn         = module.secrets.replica_logs_kms_key_arn
  flow_logs_retention_days = 365
  tags                     = merge(local.tags, { Role = "recovery" })
}

module "rds" {
  source = "../rds"
  count  = local.failover ? 0 : 1
  providers = {
    aws    = aws
    aws.dr = aws.dr
  }

  name_prefix           = local.name_prefix
  instance_class        = var.database.instance_class
  allocated_storage     = var.database.allocated_storage
  max_allocated_storage = var.database.max_allocated_storage
  multi_az              = var.database.multi_az
  backup_retention_days = var.database.backup_retention_days
  deletion_protection   = var.database.deletion_protection
  subnet_ids            = local.network.private_subnet_ids
  security_group_id     = local.network.database_security_group_id
  logs_kms_key_arn      = module.secrets.logs_kms_key_arn
  log_retention_days    = var.database.log_retention_days
  performance_insights  = var.database.performance_insights
  dr_replica = local.recovery ? {
    subnet_ids        = module.recovery_network[0].private_subnet_ids
    security_group_id = module.recovery_network[0].database_security_group_id
    instance_class    = var.recovery.db_class
  } : null
  tags = local.tags
}

# After a region loss: the promoted replica (see runbooks/disaster-recovery.md).
data "aws_db_instance" "adopted" {
  count                  = local.failover ? 1 : 0
  db_instance_identifier = var.failover.database_identifier
}

module "redis" {
  source = "../redis"

  name_prefix             = local.name_prefix
  node_type               = var.redis.node_type
  num_cache_clusters      = var.redis.num_cache_clusters
  multi_az                = var.redis.multi_az
  snapshot_retention_days = var.redis.snapshot_retention_days
  subnet_ids              = local.network.private_subnet_ids
  security_group_id       = local.network.redis_security_group_id
  auth_token              = module.secrets.redis_auth_token
  logs_kms_key_arn        = module.secrets.logs_kms_key_arn
  log_retention_days      = local.production ? 90 : 30
  tags                    = local.tags
}

module "dns_certs" {
  source = "../dns_certs"
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  domain_name               = var.domain_name
  zone_name                 = var.zone_name
  create_zone               = var.create_zone && !local.failover
  public_records            = local.edge
  cloudfront_domain_name    = local.edge ? module.cloudfront[0].domain_name : null
  cloudfront_hosted_zone_id = local.edge ? module.cloudfront[0].hosted_zone_id : null
  alb_dns_name              = module.alb.dns_name
  alb_zone_id               = module.alb.zone_id
  tags                      = local.tags
}

module "alb" {
  source = "../alb"

  name_prefix         = local.name_prefix
  vpc_id              = local.network.vpc_id
  public_subnet_ids   = local.network.public_subnet_ids
  security_group_id   = local.network.alb_security_group_id
  certificate_arn     = module.dns_certs.origin_certificate_arn
  container_port      = 8080
  health_check_path   = "/health"
  origin_verify       = module.secrets.origin_verify
  deletion_protection = local.production
  tags                = local.tags
}

module "waf" {
  source = "../waf"
  count  = local.edge ? 1 : 0
  providers = {
    aws = aws.us_east_1
  }

  name_prefix           = local.name_prefix
  ip_rate_limit         = var.edge.waf_ip_rate_limit
  evaluation_window_sec = var.edge.waf_evaluation_window
  blocked_ipv4_cidrs    = var.edge.waf_blocked_cidrs
  tags                  = local.tags
}

module "cloudfront" {
  source = "../cloudfront"
  count  = local.edge ? 1 : 0

  name_prefix        = local.name_prefix
  domain_name        = var.domain_name
  certificate_arn    = module.dns_certs.edge_certificate_arn
  origin_domain_name = module.dns_certs.origin_domain_name
  origin_verify      = module.secrets.origin_verify
  web_acl_arn        = module.waf[0].web_acl_arn
  price_class        = var.edge.price_class
  tags               = local.tags
}

module "ecs" {
  source = "../ecs"

  name_prefix      = local.name_prefix
  environment      = var.environment
  image_repository = var.image.repository
  image_tag        = var.image.tag
  cpu_architecture = var.image.architecture
  datadog_site     = var.monitoring.site

  task_cpu                   = var.service.task_cpu
  task_memory                = var.service.task_memory
  container_port             = 8080
  log_level                  = var.service.log_level
  log_retention_days         = var.service.log_retention_days
  public_url                 = "https://${var.domain_name}"
  mail_from                  = var.service.mail_from
  trusted_proxies            = local.trusted_proxies
  jwt_additional_public_keys = var.jwt_additional_public_keys

  database = {
    address                = local.database.address
    port                   = local.database.port
    name                   = local.database.name
    app_secret_arn         = module.secrets.secret_arns["app_database"]
    master_user_secret_arn = local.database.master_user_secret_arn
    master_kms_key_arn     = local.database.master_kms_key_arn
  }
  rds_ca_bundle_pem  = data.http.rds_ca.response_body
  db_pool_size       = var.service.db_pool_size
  db_max_connections = var.database.max_connections

  redis = {
    primary_endpoint = module.redis.primary_endpoint_address
    port             = module.redis.port
    auth_secret_arn  = module.secrets.secret_arns["redis_auth_token"]
  }
  secret_arns         = module.secrets.secret_arns
  secrets_kms_key_arn = module.secrets.secrets_kms_key_arn
  logs_kms_key_arn    = module.secrets.logs_kms_key_arn

  private_subnet_ids      = local.network.private_subnet_ids
  tasks_security_group_id = local.network.tasks_security_group_id
  target_group_arn        = module.alb.target_group_arn
  listener_arn            = module.alb.https_listener_arn
  alb_arn_suffix          = module.alb.arn_suffix
  target_group_arn_suffix = module.alb.target_group_arn_suffix

  service_paused           = var.service.paused
  min_capacity             = var.service.min_capacity
  max_capacity             = var.service.max_capacity
  fargate_spot             = var.service.fargate_spot
  scale_down_schedule      = var.service.scale_down_schedule
  cpu_target_percent       = var.service.cpu_target_percent
  memory_target_percent    = var.service.memory_target_percent
  latency_p95_threshold_ms = var.service.latency_p95_threshold_ms
  per_task_capacity_rps    = var.per_task_capacity_rps
  traffic_mix              = var.traffic_mix

  tags = local.tags
}

module "backup" {
  source = "../backup"
  providers = {
    aws    = aws
    aws.dr = aws.dr
  }

  name_prefix             = local.name_prefix
  resource_arns           = [local.database.arn]
  daily_retention_days    = var.backup.daily_retention_days
  weekly_retention_days   = var.backup.weekly_retention_days
  copy_to_recovery_region = local.recovery
  tags                    = local.tags
}

module "monitoring" {
  source = "../monitoring"

  environment                 = var.environment
  notify_critical             = var.monitoring.notify_critical
  notify_security             = var.monitoring.notify_security
  runbook_base_url            = var.monitoring.runbook_base_url
  ecs_cluster_name            = module.ecs.cluster_name
  ecs_service_name            = module.ecs.service_name
  expected_min_tasks          = var.service.scale_down_schedule == null && !var.service.paused ? var.service.min_capacity : null
  expect_constant_traffic     = var.monitoring.expect_constant_traffic
  rds_instance_id             = local.database.identifier
  db_max_connections          = var.database.max_connections
  db_pool_size                = var.service.db_pool_size
  redis_replication_group_id  = module.redis.replication_group_id
  manage_metric_configuration = var.monitoring.manage_metric_configuration && !local.failover
  tags                        = ["team:platform"]
}
