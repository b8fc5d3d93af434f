# The cloud footprint of Фигачечная: network → managed Kubernetes, PostgreSQL,
# Kafka and Object Storage → DNS → the cluster platform (ingress-nginx,
# cert-manager, kube-prometheus-stack) → per environment a namespace with its
# Secret, Kafka CA and CI deployer.
#
# Terraform owns the platform only. The app's releases (k8s/overlays/*, the
# image) are deployed by CI alone (.gitlab-ci.yml), so an apply here never
# changes what runs.

locals {
  labels = {
    project    = "figachechnaya"
    managed-by = "terraform"
  }

  # One entry per Kustomize overlay in k8s/overlays/.
  environments = {
    prod = {
      namespace = "figachechnaya"
      host      = var.domain
      database  = "figachechnaya"
      topic     = "figachechnaya.images"
      # Connections its processes may hold; tests/deploy checks the overlay's
      # HPA maxima × pool sizes fit (docs/capacity.md).
      connections = var.database_connection_limits.prod
    }
    dev = {
      namespace   = "figachechnaya-dev"
      host        = "dev.${var.domain}"
      database    = "figachechnaya_dev"
      topic       = "figachechnaya.images.dev"
      connections = var.database_connection_limits.dev
    }
  }
}

module "network" {
  source = "./modules/network"

  name    = "figachechnaya"
  subnets = var.subnets
  labels  = local.labels
}

module "kubernetes" {
  source = "./modules/kubernetes"

  name               = "figachechnaya"
  folder_id          = var.folder_id
  kubernetes_version = var.kubernetes_version
  network_id         = module.network.network_id
  subnet_ids         = module.network.subnet_ids
  cluster_sg_ids     = [module.network.cluster_security_group_id]
  node_sg_ids        = [module.network.nodes_security_group_id]
  cluster_ipv4_range = module.network.pod_cidr
  service_ipv4_range = module.network.service_cidr
  node_count         = var.node_count
  labels             = local.labels
}

module "postgresql" {
  source = "./modules/postgresql"

  # A restored cluster is a new one beside the old (names are unique in a folder).
  name               = var.postgresql_restore == null ? "figachechnaya" : "figachechnaya-restored"
  network_id         = module.network.network_id
  subnet_ids         = module.network.subnet_ids
  security_group_ids = [module.network.data_security_group_id]
  preset             = var.postgresql_preset
  max_connections    = var.postgresql_max_connections
  databases          = { for env, e in local.environments : env => e.database }
  connection_limits  = { for env, e in local.environments : env => e.connections }
  labels             = local.labels

  backup_retention_days = var.postgresql_backup_retention_days
  restore               = var.postgresql_restore
}

module "kafka" {
  source = "./modules/kafka"

  name               = "figachechnaya"
  network_id         = module.network.network_id
  subnet_ids         = module.network.subnet_ids
  security_group_ids = [module.network.data_security_group_id]
  topics             = var.kafka_topics
  users              = { for env, e in local.environments : env => e.topic }
  labels             = local.labels
}

module "storage" {
  source = "./modules/storage"

  folder_id   = var.folder_id
  bucket_name = var.bucket_name
  labels      = local.labels
}

module "dns" {
  source = "./modules/dns"

  domain     = var.domain
  records    = { for env, e in local.environments : env => e.host }
  ingress_ip = module.network.ingress_ip
  labels     = local.labels
}

module "platform" {
  source = "./modules/platform"

  ingress_ip      = module.network.ingress_ip
  cluster_issuers = "${path.root}/../k8s/cluster"
  dashboards_dir  = "${path.root}/../deploy/grafana/dashboards"

  depends_on = [module.kubernetes]
}

# The managed Kafka's root CA, from the address Yandex Cloud documents for
# client certificates (public data, fetched over HTTPS with the system CAs).
# Fetched at every plan so that a rotation by the cloud shows up as a diff of
# the figachechnaya-kafka-ca ConfigMaps; var.kafka_ca_certificate overrides it
# where the runner cannot reach the address.
data "http" "kafka_ca" {
  count = var.kafka_ca_certificate == null ? 1 : 0

  url = var.kafka_ca_url

  lifecycle {
    postcondition {
      condition     = self.status_code == 200 && strcontains(self.response_body, "BEGIN CERTIFICATE")
      error_message = "The Kafka CA address did not answer with a PEM certificate."
    }
  }
}

locals {
  kafka_ca_certificate = coalesce(var.kafka_ca_certificate, one(data.http.kafka_ca[*].response_body))
}

module "namespace" {
  source   = "./modules/namespace"
  for_each = local.environments

  namespace = each.value.namespace

  database_url            = module.postgresql.database_urls[each.key]
  kafka_bootstrap_servers = module.kafka.bootstrap_servers
  kafka_username          = module.kafka.usernames[each.key]
  kafka_password          = module.kafka.passwords[each.key]
  kafka_ca_certificate    = local.kafka_ca_certificate
  s3_access_key_id        = module.storage.access_key_id
  s3_secret_access_key    = module.storage.secret_access_key

  depends_on = [module.kubernetes]
}
