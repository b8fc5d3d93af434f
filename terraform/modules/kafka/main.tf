# Managed Apache Kafka (KRaft): one broker per zone, private addresses,
# SASL_SSL on port 9091. Topics have replication factor 3 and
# min.insync.replicas 2, so the idempotent producer's acks=all survives a
# zone. Each environment's user may only produce to and consume from its
# own topic.

resource "yandex_mdb_kafka_cluster" "this" {
  name                = var.name
  environment         = "PRODUCTION"
  network_id          = var.network_id
  subnet_ids          = values(var.subnet_ids)
  security_group_ids  = var.security_group_ids
  deletion_protection = true
  labels              = var.labels

  config {
    version          = var.kafka_version
    brokers_count    = 1
    zones            = keys(var.subnet_ids)
    assign_public_ip = false
    schema_registry  = false

    kafka {
      resources {
        resource_preset_id = var.preset
        disk_type_id       = "network-ssd"
        disk_size          = 64
      }

      kafka_config {
        auto_create_topics_enable = false
      }
    }
  }

  maintenance_window {
    type = "WEEKLY"
    day  = "MON"
    hour = 4
  }
}

resource "yandex_mdb_kafka_topic" "this" {
  for_each = var.topics

  cluster_id         = yandex_mdb_kafka_cluster.this.id
  name               = each.key
  partitions         = each.value
  replication_factor = 3

  topic_config {
    min_insync_replicas = 2
    retention_ms        = 604800000
  }
}

resource "random_password" "user" {
  for_each = var.users

  length  = 32
  special = false
}

resource "yandex_mdb_kafka_user" "this" {
  for_each = var.users

  cluster_id = yandex_mdb_kafka_cluster.this.id
  name       = "figachechnaya-${each.key}"
  password   = random_password.user[each.key].result

  permission {
    topic_name = yandex_mdb_kafka_topic.this[each.value].name
    role       = "ACCESS_ROLE_PRODUCER"
  }

  permission {
    topic_name = yandex_mdb_kafka_topic.this[each.value].name
    role       = "ACCESS_ROLE_CONSUMER"
  }
}
