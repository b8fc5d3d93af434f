output "grafana_admin_password" {
  description = "Password of Grafana's admin user."
  sensitive   = true
  value       = random_password.grafana_admin.result
}

output "namespaces" {
  description = "Namespaces of the platform components (k8s/base NetworkPolicies refer to them)."
  value = {
    ingress    = helm_release.ingress_nginx.namespace
    monitoring = helm_release.kube_prometheus_stack.namespace
    tls        = helm_release.cert_manager.namespace
  }
}
