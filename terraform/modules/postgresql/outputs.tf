locals {
  # The managed cluster's special name always points at the current primary.
  host = "c-${yandex_mdb_postgresql_cluster.this.id}.rw.mdb.yandexcloud.net"
}

output "host" {
  description = "Read-write address (the current primary)."
  value       = local.host
}

output "database_urls" {
  description = "Environment => FIGA_DATABASE_URL (SQLAlchemy asyncpg URL, TLS required)."
  sensitive   = true
  value = {
    for env, database in var.databases :
    env => format(
      "postgresql+asyncpg://%s:%s@%s:6432/%s?ssl=require",
      yandex_mdb_postgresql_user.this[env].name,
      random_password.user[env].result,
      local.host,
      yandex_mdb_postgresql_database.this[env].name,
    )
  }
}
