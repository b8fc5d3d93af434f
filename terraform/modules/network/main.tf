# A private network: one subnet per zone, egress to the internet through a
# NAT gateway (nodes and pods have no public addresses), security groups for
# the cluster, its nodes and the managed data services, and the one public
# address of the service: the ingress load balancer's.

resource "yandex_vpc_network" "this" {
  name   = var.name
  labels = var.labels
}

resource "yandex_vpc_gateway" "nat" {
  name   = "${var.name}-nat"
  labels = var.labels
  shared_egress_gateway {}
}

resource "yandex_vpc_route_table" "nat" {
  name       = "${var.name}-nat"
  network_id = yandex_vpc_network.this.id
  labels     = var.labels

  static_route {
    destination_prefix = "0.0.0.0/0"
    gateway_id         = yandex_vpc_gateway.nat.id
  }
}

resource "yandex_vpc_subnet" "this" {
  for_each = var.subnets

  name           = "${var.name}-${each.key}"
  zone           = each.key
  network_id     = yandex_vpc_network.this.id
  v4_cidr_blocks = [each.value]
  route_table_id = yandex_vpc_route_table.nat.id
  labels         = var.labels
}

resource "yandex_vpc_address" "ingress" {
  name                = "${var.name}-ingress"
  labels              = var.labels
  deletion_protection = true

  external_ipv4_address {
    zone_id = keys(var.subnets)[0]
  }
}

locals {
  internal_cidrs = concat(values(var.subnets), [var.pod_cidr, var.service_cidr])
}

# The Kubernetes master: reachable from the VPC only (CI runs inside it).
resource "yandex_vpc_security_group" "cluster" {
  name       = "${var.name}-k8s-master"
  network_id = yandex_vpc_network.this.id
  labels     = var.labels

  ingress {
    description    = "Kubernetes API from the VPC (nodes, CI runner)"
    protocol       = "TCP"
    port           = 443
    v4_cidr_blocks = values(var.subnets)
  }

  ingress {
    description    = "Kubernetes API (alternative port) from the VPC"
    protocol       = "TCP"
    port           = 6443
    v4_cidr_blocks = values(var.subnets)
  }

  ingress {
    description       = "Health checks of the Yandex network load balancer"
    protocol          = "TCP"
    from_port         = 0
    to_port           = 65535
    predefined_target = "loadbalancer_healthchecks"
  }

  egress {
    description    = "Master to nodes and pods"
    protocol       = "ANY"
    from_port      = 0
    to_port        = 65535
    v4_cidr_blocks = local.internal_cidrs
  }
}

# Worker nodes: traffic inside the cluster, the load balancer to the
# ingress NodePorts, and egress for images and Object Storage via NAT.
resource "yandex_vpc_security_group" "nodes" {
  name       = "${var.name}-k8s-nodes"
  network_id = yandex_vpc_network.this.id
  labels     = var.labels

  ingress {
    description    = "Pods and services"
    protocol       = "ANY"
    from_port      = 0
    to_port        = 65535
    v4_cidr_blocks = local.internal_cidrs
  }

  ingress {
    description       = "Nodes and master talk to each other"
    protocol          = "ANY"
    from_port         = 0
    to_port           = 65535
    predefined_target = "self_security_group"
  }

  ingress {
    description       = "Health checks of the Yandex network load balancer"
    protocol          = "TCP"
    from_port         = 0
    to_port           = 65535
    predefined_target = "loadbalancer_healthchecks"
  }

  ingress {
    description    = "HTTP and HTTPS from the internet to ingress-nginx NodePorts"
    protocol       = "TCP"
    from_port      = 30000
    to_port        = 32767
    v4_cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    description    = "Image pulls, Object Storage, Let's Encrypt, managed services"
    protocol       = "ANY"
    from_port      = 0
    to_port        = 65535
    v4_cidr_blocks = ["0.0.0.0/0"]
  }
}

# Managed PostgreSQL (6432) and Kafka (9091): only from inside the network.
resource "yandex_vpc_security_group" "data" {
  name       = "${var.name}-data"
  network_id = yandex_vpc_network.this.id
  labels     = var.labels

  ingress {
    description    = "PostgreSQL through the managed connection pooler"
    protocol       = "TCP"
    port           = 6432
    v4_cidr_blocks = local.internal_cidrs
  }

  ingress {
    description    = "Kafka, SASL_SSL"
    protocol       = "TCP"
    port           = 9091
    v4_cidr_blocks = local.internal_cidrs
  }

  egress {
    description    = "Replication between the hosts of a managed cluster"
    protocol       = "ANY"
    from_port      = 0
    to_port        = 65535
    v4_cidr_blocks = values(var.subnets)
  }
}
