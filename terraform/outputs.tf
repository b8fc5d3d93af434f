output "cluster_id" {
  description = "Managed Kubernetes cluster (an administrator's access: yc managed-kubernetes cluster get-credentials <id> --internal)."
  value       = module.kubernetes.cluster_id
}

output "image_repository" {
  description = "Where CI pushes the image (CI variable IMAGE_REPOSITORY)."
  value       = module.kubernetes.image_repository
}

output "ingress_ip" {
  description = "Public address of ingress-nginx; the DNS records point here."
  value       = module.network.ingress_ip
}

output "dns_zone_id" {
  description = "Public DNS zone; delegate the domain to ns1.yandexcloud.net and ns2.yandexcloud.net."
  value       = module.dns.zone_id
}

output "kafka_bootstrap_servers" {
  description = "Managed Kafka brokers (SASL_SSL, port 9091)."
  value       = module.kafka.bootstrap_servers
}

output "postgresql_host" {
  description = "Read-write address of the managed PostgreSQL cluster (port 6432)."
  value       = module.postgresql.host
}

output "bucket" {
  description = "Object Storage bucket of the pictures."
  value       = module.storage.bucket
}

output "namespaces" {
  description = "Environment => its namespace (the overlays' `namespace:`)."
  value       = { for env, namespace in module.namespace : env => namespace.namespace }
}

output "ci_kubeconfig" {
  description = "Environment => kubeconfig of its namespace's CI deployer: the GitLab file variable KUBECONFIG, scoped to that environment (dev, production)."
  sensitive   = true
  value = {
    for env, namespace in module.namespace : env => yamlencode({
      apiVersion      = "v1"
      kind            = "Config"
      current-context = "figachechnaya-${env}"
      clusters = [{
        name = "figachechnaya"
        cluster = {
          server                     = module.kubernetes.endpoint
          certificate-authority-data = base64encode(module.kubernetes.ca_certificate)
        }
      }]
      users = [{
        name = "figachechnaya-ci-deployer-${env}"
        user = { token = namespace.deployer_token }
      }]
      contexts = [{
        name = "figachechnaya-${env}"
        context = {
          cluster   = "figachechnaya"
          user      = "figachechnaya-ci-deployer-${env}"
          namespace = namespace.namespace
        }
      }]
    })
  }
}
