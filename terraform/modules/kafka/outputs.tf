output "bootstrap_servers" {
  description = "FIGA_KAFKA_BOOTSTRAP_SERVERS: every broker, SASL_SSL port."
  value = join(",", [
    for host in yandex_mdb_kafka_cluster.this.host : "${host.name}:9091" if host.role == "KAFKA"
  ])
}

output "usernames" {
  description = "Environment => FIGA_KAFKA_SASL_USERNAME."
  value       = { for env, user in yandex_mdb_kafka_user.this : env => user.name }
}

output "passwords" {
  description = "Environment => FIGA_KAFKA_SASL_PASSWORD."
  sensitive   = true
  value       = { for env, password in random_password.user : env => password.result }
}
