# Logs collected (issue 12 § 1): Loki in the monitoring namespace, beside the
# Grafana that reads it, and Grafana Alloy on every node, which reads the
# logs of the app's and the workers' pods of every environment and of the
# ingress-nginx controllers through the Kubernetes API (no host paths) and
# pushes them with the labels app, component, namespace and level; the request
# id is structured metadata (values/pod-logs.alloy, tests/deploy/test_log_pipeline.py).

resource "helm_release" "loki" {
  name             = "loki"
  repository       = "https://grafana.github.io/helm-charts"
  chart            = "loki"
  version          = var.chart_versions.loki
  namespace        = "monitoring"
  create_namespace = true
  atomic           = true
  timeout          = 900

  values = [file("${path.module}/values/loki.yaml")]

  depends_on = [helm_release.kube_prometheus_stack]
}

resource "helm_release" "alloy" {
  name             = "alloy"
  repository       = "https://grafana.github.io/helm-charts"
  chart            = "alloy"
  version          = var.chart_versions.alloy
  namespace        = "monitoring"
  create_namespace = true
  atomic           = true

  values = [
    file("${path.module}/values/alloy.yaml"),
    yamlencode({ alloy = { configMap = { content = file("${path.module}/values/pod-logs.alloy") } } }),
  ]

  depends_on = [helm_release.loki]
}

# Grafana's datasource sidecar (kube-prometheus-stack) loads every ConfigMap
# of its namespace labelled grafana_datasource=1: Loki with the uid "loki"
# the dashboard's log links name, and the request-id link of compose's Grafana.
resource "kubernetes_config_map_v1" "loki_datasource" {
  metadata {
    name      = "figachechnaya-loki-datasource"
    namespace = "monitoring"
    labels    = { grafana_datasource = "1" }
  }

  data = {
    "loki.yaml" = file("${path.module}/values/grafana-loki-datasource.yaml")
  }

  depends_on = [helm_release.kube_prometheus_stack, helm_release.loki]
}
