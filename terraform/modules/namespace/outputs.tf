output "namespace" {
  description = "Namespace the environment runs in."
  value       = kubernetes_namespace_v1.this.metadata[0].name
}

output "secret_name" {
  description = "Name of the Secret the Deployments read."
  value       = kubernetes_secret_v1.settings.metadata[0].name
}

output "deployer_token" {
  description = "Bearer token of the namespace's CI deployer ServiceAccount."
  sensitive   = true
  value       = kubernetes_secret_v1.deployer_token.data["token"]
}
