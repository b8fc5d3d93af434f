# Managed Kubernetes: a regional (three-zone) master with a private endpoint
# only, secrets encrypted with a KMS key, Calico for NetworkPolicies, an
# autoscaled node groups without public addresses, and the image registry
# the nodes pull from with their own service account (no pull secret).

resource "yandex_iam_service_account" "cluster" {
  name        = "${var.name}-k8s-cluster"
  description = "Manages the cluster's compute, network and load balancers."
}

resource "yandex_iam_service_account" "nodes" {
  name        = "${var.name}-k8s-nodes"
  description = "Identity of the worker nodes: pulls images."
}

locals {
  cluster_roles = toset([
    "k8s.clusters.agent",
    "vpc.publicAdmin",
    "load-balancer.admin",
    "logging.writer",
  ])
}

resource "yandex_resourcemanager_folder_iam_member" "cluster" {
  for_each = local.cluster_roles

  folder_id = var.folder_id
  role      = each.value
  member    = "serviceAccount:${yandex_iam_service_account.cluster.id}"
}

resource "yandex_container_registry" "this" {
  name   = var.name
  labels = var.labels
}

resource "yandex_container_registry_iam_binding" "pull" {
  registry_id = yandex_container_registry.this.id
  role        = "container-registry.images.puller"
  members     = ["serviceAccount:${yandex_iam_service_account.nodes.id}"]
}

resource "yandex_kms_symmetric_key" "secrets" {
  name              = "${var.name}-k8s-secrets"
  description       = "Encrypts Kubernetes Secrets in etcd."
  default_algorithm = "AES_256"
  rotation_period   = "8760h"
  labels            = var.labels
}

resource "yandex_kms_symmetric_key_iam_binding" "cluster" {
  symmetric_key_id = yandex_kms_symmetric_key.secrets.id
  role             = "kms.keys.encrypterDecrypter"
  members          = ["serviceAccount:${yandex_iam_service_account.cluster.id}"]
}

resource "yandex_kubernetes_cluster" "this" {
  name        = var.name
  description = "Фигачечная"
  network_id  = var.network_id
  labels      = var.labels

  cluster_ipv4_range = var.cluster_ipv4_range
  service_ipv4_range = var.service_ipv4_range

  master {
    version            = var.kubernetes_version
    public_ip          = false
    security_group_ids = var.cluster_sg_ids

    regional {
      region = "ru-central1"

      dynamic "location" {
        for_each = var.subnet_ids
        content {
          zone      = location.key
          subnet_id = location.value
        }
      }
    }

    maintenance_policy {
      auto_upgrade = true

      maintenance_window {
        start_time = "01:00"
        duration   = "3h"
      }
    }

    master_logging {
      enabled                = true
      folder_id              = var.folder_id
      kube_apiserver_enabled = true
      events_enabled         = true
      audit_enabled          = true
    }
  }

  service_account_id      = yandex_iam_service_account.cluster.id
  node_service_account_id = yandex_iam_service_account.nodes.id
  release_channel         = "STABLE"
  network_policy_provider = "CALICO"

  kms_provider {
    key_id = yandex_kms_symmetric_key.secrets.id
  }

  depends_on = [
    yandex_resourcemanager_folder_iam_member.cluster,
    yandex_kms_symmetric_key_iam_binding.cluster,
  ]
}

# One autoscaled group per zone: an autoscaled group lives in a single zone.
resource "yandex_kubernetes_node_group" "this" {
  for_each = var.subnet_ids

  cluster_id = yandex_kubernetes_cluster.this.id
  name       = "${var.name}-nodes-${each.key}"
  version    = var.kubernetes_version
  labels     = var.labels

  instance_template {
    platform_id = var.node_platform

    network_interface {
      nat                = false
      subnet_ids         = [each.value]
      security_group_ids = var.node_sg_ids
    }

    resources {
      cores  = var.node_resources.cores
      memory = var.node_resources.memory
    }

    boot_disk {
      type = "network-ssd"
      size = 64
    }

    container_runtime {
      type = "containerd"
    }

    metadata = {
      # No SSH keys: nodes are cattle, debugged with kubectl only.
      enable-oslogin = "true"
    }
  }

  scale_policy {
    auto_scale {
      min     = var.node_count.min
      max     = var.node_count.max
      initial = var.node_count.min
    }
  }

  allocation_policy {
    location {
      zone = each.key
    }
  }

  maintenance_policy {
    auto_upgrade = true
    auto_repair  = true

    maintenance_window {
      start_time = "01:00"
      duration   = "3h"
    }
  }
}
