# Managed PostgreSQL: one host per zone (automatic failover), private
# addresses only, deletion protection on. Backups: a full backup every day
# in the backup window, and the WAL in between archived continuously by the
# service, kept for backup_retention_days — any moment in that window can be
# restored (point-in-time recovery, docs/operations.md). With `restore` set,
# the cluster is created from a backup at a point in time instead of empty. Each
# environment owns a database and a user with a generated password that
# only the Terraform state (an encrypted, private bucket) and the
# Kubernetes Secret ever hold, and a connection limit: the apps connect on
# 6432 through the managed pooler (Odyssey, session mode), one server
# connection per client connection, so the limits add up to max_connections.

resource "yandex_mdb_postgresql_cluster" "this" {
  name                = var.name
  environment         = "PRODUCTION"
  network_id          = var.network_id
  security_group_ids  = var.security_group_ids
  deletion_protection = true
  labels              = var.labels

  config {
    version = var.postgresql_version

    resources {
      resource_preset_id = var.preset
      disk_type_id       = "network-ssd"
      disk_size          = var.disk_size
    }

    # Stated, not left to the host class's default: the users' conn_limit
    # and docs/capacity.md's connection budget are written against it.
    postgresql_config = {
      max_connections = var.max_connections
    }

    backup_retain_period_days = var.backup_retention_days

    backup_window_start {
      hours   = var.backup_window_start_hour
      minutes = 0
    }

    access {
      data_lens     = false
      web_sql       = false
      serverless    = false
      data_transfer = false
    }
  }

  dynamic "host" {
    for_each = var.subnet_ids
    content {
      zone             = host.key
      subnet_id        = host.value
      assign_public_ip = false
    }
  }

  # Point-in-time recovery into this cluster at creation (the provider forces a
  # new cluster for it, so it is only ever set for a restore; see the variable).
  dynamic "restore" {
    for_each = var.restore == null ? [] : [var.restore]
    content {
      backup_id = restore.value.backup_id
      time      = restore.value.time
    }
  }

  maintenance_window {
    type = "WEEKLY"
    day  = "MON"
    hour = 3
  }
}

resource "random_password" "user" {
  for_each = var.databases

  length  = 32
  special = false
}

resource "yandex_mdb_postgresql_user" "this" {
  for_each = var.databases

  cluster_id = yandex_mdb_postgresql_cluster.this.id
  name       = each.value
  password   = random_password.user[each.key].result
  conn_limit = var.connection_limits[each.key]
}

resource "yandex_mdb_postgresql_database" "this" {
  for_each = var.databases

  cluster_id = yandex_mdb_postgresql_cluster.this.id
  name       = each.value
  owner      = yandex_mdb_postgresql_user.this[each.key].name
}
