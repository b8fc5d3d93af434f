output "namespace" {
  description = "Namespace the environment runs in."
  value       = var.namespace
}

output "secret_name" {
  description = "Name of the Secret the Deployments read."
  value       = kubernetes_secret_v1.settings.metadata[0].name
}
