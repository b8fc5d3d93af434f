output "cluster_id" {
  description = "Managed Kubernetes cluster ID."
  value       = yandex_kubernetes_cluster.this.id
}

output "endpoint" {
  description = "Private API endpoint of the master."
  value       = yandex_kubernetes_cluster.this.master[0].internal_v4_endpoint
}

output "ca_certificate" {
  description = "PEM CA certificate of the cluster API."
  value       = yandex_kubernetes_cluster.this.master[0].cluster_ca_certificate
}

output "image_repository" {
  description = "Image repository of the service in the registry."
  value       = "cr.yandex/${yandex_container_registry.this.id}/figachechnaya"
}
