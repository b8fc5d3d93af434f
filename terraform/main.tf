# The cloud footprint of Фигачечная: network → managed Kubernetes, PostgreSQL,
# Kafka and Object Storage → DNS → the cluster platform (ingress-nginx,
# cert-manager, kube-prometheus-stack) → the app from k8s/overlays/*.

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
    }
    dev = {
      namespace = "figachechnaya-dev"
      host      = "dev.${var.domain}"
      database  = "figachechnaya_dev"
      topic     = "figachechnaya.images.dev"
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

  name               = "figachechnaya"
  network_id         = module.network.network_id
  subnet_ids         = module.network.subnet_ids
  security_group_ids = [module.network.data_security_group_id]
  preset             = var.postgresql_preset
  databases          = { for env, e in local.environments : env => e.database }
  labels             = local.labels
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

module "app" {
  source   = "./modules/app"
  for_each = local.environments

  namespace        = each.value.namespace
  overlay_path     = "${path.root}/../k8s/overlays/${each.key}"
  image_repository = module.kubernetes.image_repository
  image_tag        = var.image_tags[each.key]

  database_url            = module.postgresql.database_urls[each.key]
  kafka_bootstrap_servers = module.kafka.bootstrap_servers
  kafka_username          = module.kafka.usernames[each.key]
  kafka_password          = module.kafka.passwords[each.key]
  s3_access_key_id        = module.storage.access_key_id
  s3_secret_access_key    = module.storage.secret_access_key

  depends_on = [module.platform]
}
