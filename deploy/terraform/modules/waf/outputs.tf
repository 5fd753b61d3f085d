output "web_acl_arn" {
  description = "ARN of the CLOUDFRONT-scope web ACL (the distribution's web_acl_id)."
  value       = aws_wafv2_web_acl.this.arn
}

output "web_acl_name" {
  description = "Name of the web ACL."
  value       = aws_wafv2_web_acl.this.name
}

output "web_acl_id" {
  description = "Id of the web ACL (aws wafv2 get-web-acl --id)."
  value       = aws_wafv2_web_acl.this.id
}
