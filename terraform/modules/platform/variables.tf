variable "ingress_ip" {
  description = "Reserved public address for the ingress-nginx load balancer."
  type        = string
}

variable "cluster_issuers" {
  description = "Path of the Kustomize directory with the cert-manager ClusterIssuers (k8s/cluster)."
  type        = string
}

variable "dashboards_dir" {
  description = "Folder of Grafana dashboard JSON files (deploy/grafana/dashboards)."
  type        = string
}

variable "chart_versions" {
  description = "Pinned Helm chart versions."
  type        = map(string)
  default = {
    ingress_nginx         = "4.12.1"
    cert_manager          = "v1.17.2"
    kube_prometheus_stack = "70.4.2"
    loki                  = "6.29.0"
    alloy                 = "1.0.3"
  }
}
