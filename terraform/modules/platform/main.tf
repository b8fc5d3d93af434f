# What every environment of the cluster relies on: ingress-nginx on the
# reserved public address, cert-manager with the Let's Encrypt
# ClusterIssuers, and kube-prometheus-stack (Prometheus, Alertmanager,
# Grafana) that picks up the app's ServiceMonitor, PrometheusRule and
# dashboard. Namespaces match the NetworkPolicies of k8s/base.

resource "helm_release" "kube_prometheus_stack" {
  name             = "kube-prometheus-stack"
  repository       = "https://prometheus-community.github.io/helm-charts"
  chart            = "kube-prometheus-stack"
  version          = var.chart_versions.kube_prometheus_stack
  namespace        = "monitoring"
  create_namespace = true
  atomic           = true
  timeout          = 900

  values = [yamlencode({
    prometheus = {
      prometheusSpec = {
        retention = "15d"
      }
    }
    grafana = {
      sidecar = {
        dashboards = { enabled = true, label = "grafana_dashboard", searchNamespace = "ALL" }
      }
    }
  })]

  set_sensitive {
    name  = "grafana.adminPassword"
    value = random_password.grafana_admin.result
  }
}

resource "random_password" "grafana_admin" {
  length  = 32
  special = false
}

resource "helm_release" "ingress_nginx" {
  name             = "ingress-nginx"
  repository       = "https://kubernetes.github.io/ingress-nginx"
  chart            = "ingress-nginx"
  version          = var.chart_versions.ingress_nginx
  namespace        = "ingress-nginx"
  create_namespace = true
  atomic           = true

  # values/ingress-nginx.yaml: the JSON access log with the request id (issue 12 § 1).
  values = [file("${path.module}/values/ingress-nginx.yaml"), yamlencode({
    controller = {
      replicaCount = 2
      service = {
        loadBalancerIP = var.ingress_ip
        # Keeps the client address for X-Forwarded-For (rate limits, logs).
        externalTrafficPolicy = "Local"
      }
      metrics = {
        enabled        = true
        serviceMonitor = { enabled = true, additionalLabels = { release = "kube-prometheus-stack" } }
      }
    }
  })]

  depends_on = [helm_release.kube_prometheus_stack]
}

resource "helm_release" "cert_manager" {
  name             = "cert-manager"
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = var.chart_versions.cert_manager
  namespace        = "cert-manager"
  create_namespace = true
  atomic           = true

  values = [yamlencode({
    crds = { enabled = true }
  })]
}

data "kustomization_build" "cluster_issuers" {
  path = var.cluster_issuers
}

resource "kustomization_resource" "cluster_issuers" {
  for_each = data.kustomization_build.cluster_issuers.ids

  manifest = data.kustomization_build.cluster_issuers.manifests[each.value]

  depends_on = [helm_release.cert_manager, helm_release.ingress_nginx]
}

# Dashboards for Grafana's sidecar, straight from deploy/grafana/dashboards.
resource "kubernetes_config_map_v1" "dashboards" {
  metadata {
    name      = "figachechnaya-dashboards"
    namespace = "monitoring"
    labels    = { grafana_dashboard = "1" }
  }

  data = {
    for file in fileset(var.dashboards_dir, "*.json") : file => file("${var.dashboards_dir}/${file}")
  }

  depends_on = [helm_release.kube_prometheus_stack]
}
