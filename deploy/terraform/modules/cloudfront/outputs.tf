output "distribution_id" {
  description = "Distribution id (aws cloudfront create-invalidation --distribution-id)."
  value       = aws_cloudfront_distribution.api.id
}

output "distribution_arn" {
  description = "Distribution ARN."
  value       = aws_cloudfront_distribution.api.arn
}

output "domain_name" {
  description = "The distribution's *.cloudfront.net name (the public record aliases it)."
  value       = aws_cloudfront_distribution.api.domain_name
}

output "hosted_zone_id" {
  description = "CloudFront's hosted zone (for alias records)."
  value       = aws_cloudfront_distribution.api.hosted_zone_id
}
