output "zone_id" {
  description = "Public DNS zone ID."
  value       = yandex_dns_zone.this.id
}

output "hosts" {
  description = "Environment => fully qualified host name."
  value       = { for env, record in yandex_dns_recordset.ingress : env => trimsuffix(record.name, ".") }
}
