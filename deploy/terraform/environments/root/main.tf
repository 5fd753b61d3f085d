# The code of every environment. dev/, staging/ and production/ link this file,
# variables.tf, outputs.tf and providers.tf, and hold only what differs: the
# state backend (versions.tf) and the values (terraform.tfvars). Terraform is
# run in those directories, never in this one.
module "stack" {
  source = "../../modules/stack"
  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
    aws.dr        = aws.dr
  }

  environment = var.environment
  domain_name = var.domain_name
  zone_name   = var.zone_name
  create_zone = var.create_zone

  network = var.network
  image = {
    repository   = var.image_repository
    tag          = var.image_tag
    architecture = var.image_architecture
  }
  service                    = merge(var.service, { paused = var.service_paused || var.service.paused })
  per_task_capacity_rps      = var.per_task_capacity_rps
  traffic_mix                = var.traffic_mix
  jwt_additional_public_keys = var.jwt_additional_public_keys
  database                   = var.database
  redis                      = var.redis
  edge                       = var.edge
  backup                     = var.backup
  recovery                   = var.recovery
  failover                   = var.failover
  monitoring                 = var.monitoring
  tags                       = var.tags
}
