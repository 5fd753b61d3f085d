output "dashboard_url" {
  description = "Path of the service dashboard in Datadog."
  value       = datadog_dashboard_json.service.url
}

output "monitor_ids" {
  description = "Monitor ids by key."
  value       = { for k, m in datadog_monitor.this : k => m.id }
}
