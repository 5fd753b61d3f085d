output "backend_config" {
  description = "Contents of backend.hcl for the environments: terraform output -raw backend_config > backend.hcl"
  value       = <<-EOT
    bucket     = "${module.state_bucket.name}"
    kms_key_id = "${aws_kms_key.state.arn}"
  EOT
}

output "recovery_backend_config" {
  description = "backend.hcl of a failover deployment in the recovery region (null without one)."
  value = local.recovery ? join("\n", [
    "bucket     = \"${module.recovery_state_bucket[0].name}\"",
    "kms_key_id = \"${aws_kms_key.recovery_state[0].arn}\"",
    "region     = \"${var.recovery_region}\"",
    "key        = \"suma-auth/production-failover.tfstate\"",
    "",
  ]) : null
}

output "ecr_repository_url" {
  description = "Image repository (the environments' image_repository)."
  value       = aws_ecr_repository.server.repository_url
}

output "recovery_ecr_repository_url" {
  description = "The repository's replica in the recovery region (null without one)."
  value       = local.recovery ? "${local.account_id}.dkr.ecr.${var.recovery_region}.amazonaws.com/${aws_ecr_repository.server.name}" : null
}
