# One application namespace of the cluster, everything in it that is not a
# release: the Namespace (Pod Security "restricted"), the figachechnaya-secrets
# Secret and the figachechnaya-kafka-ca ConfigMap that the overlay only names,
# and the CI deployer — a ServiceAccount that may apply the overlay
# (namespace-scoped objects only) and follow its rollout, nothing more.
#
# The app itself (Deployments, Job, Services, …) is never applied from here:
# CI's deploy jobs own the releases, so `terraform apply` cannot roll one back.

resource "kubernetes_namespace_v1" "this" {
  metadata {
    name = var.namespace
    labels = {
      "app.kubernetes.io/part-of"                  = "figachechnaya"
      "pod-security.kubernetes.io/enforce"         = "restricted"
      "pod-security.kubernetes.io/enforce-version" = "latest"
      "pod-security.kubernetes.io/warn"            = "restricted"
    }
  }
}

# Signs the form's CSRF tokens; every app replica must share it.
resource "random_password" "secret_key" {
  length  = 48
  special = false
}

resource "kubernetes_secret_v1" "settings" {
  metadata {
    name      = "figachechnaya-secrets"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }

  data = {
    FIGA_DATABASE_URL            = var.database_url
    FIGA_KAFKA_BOOTSTRAP_SERVERS = var.kafka_bootstrap_servers
    FIGA_KAFKA_SASL_USERNAME     = var.kafka_username
    FIGA_KAFKA_SASL_PASSWORD     = var.kafka_password
    AWS_ACCESS_KEY_ID            = var.s3_access_key_id
    AWS_SECRET_ACCESS_KEY        = var.s3_secret_access_key
    FIGA_SECRET_KEY              = random_password.secret_key.result
  }
}

# The managed Kafka's brokers present certificates of the cloud's own root
# CA; the pods mount this at /etc/figachechnaya/kafka-ca/ca.crt
# (FIGA_KAFKA_SSL_CAFILE). Public data, hence a ConfigMap.
resource "kubernetes_config_map_v1" "kafka_ca" {
  metadata {
    name      = "figachechnaya-kafka-ca"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }

  data = {
    "ca.crt" = var.kafka_ca_certificate
  }
}

resource "kubernetes_service_account_v1" "deployer" {
  metadata {
    name      = "figachechnaya-ci-deployer"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }

  # The token is for CI outside the cluster; no pod runs as the deployer.
  automount_service_account_token = false
}

# A long-lived token for the CI variable KUBECONFIG (output ci_kubeconfig).
# Rotate it by tainting this resource and updating the variable.
resource "kubernetes_secret_v1" "deployer_token" {
  metadata {
    name      = "figachechnaya-ci-deployer-token"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    annotations = {
      "kubernetes.io/service-account.name" = kubernetes_service_account_v1.deployer.metadata[0].name
    }
  }

  type                           = "kubernetes.io/service-account-token"
  wait_for_service_account_token = true
}

# Exactly what `kubectl apply -f` of the rendered overlay, `kubectl wait`,
# `kubectl rollout status|undo` and the migration's logs need. No Secrets
# (Terraform writes them), no Roles or RoleBindings (no escalation), no
# delete except for the migrate Job, which is replaced on every release
# because a Job's pod template is immutable.
resource "kubernetes_role_v1" "deployer" {
  metadata {
    name      = "figachechnaya-ci-deployer"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }

  # The kinds of k8s/overlays/* (tests/deploy checks them against the render).
  rule {
    api_groups = [""]
    resources  = ["configmaps", "services", "serviceaccounts"]
    verbs      = ["get", "list", "watch", "create", "update", "patch"]
  }

  rule {
    api_groups = ["apps"]
    resources  = ["deployments"]
    verbs      = ["get", "list", "watch", "create", "update", "patch"]
  }

  rule {
    api_groups = ["autoscaling"]
    resources  = ["horizontalpodautoscalers"]
    verbs      = ["get", "list", "watch", "create", "update", "patch"]
  }

  rule {
    api_groups = ["policy"]
    resources  = ["poddisruptionbudgets"]
    verbs      = ["get", "list", "watch", "create", "update", "patch"]
  }

  rule {
    api_groups = ["networking.k8s.io"]
    resources  = ["ingresses", "networkpolicies"]
    verbs      = ["get", "list", "watch", "create", "update", "patch"]
  }

  rule {
    api_groups = ["monitoring.coreos.com"]
    resources  = ["servicemonitors", "prometheusrules", "alertmanagerconfigs"]
    verbs      = ["get", "list", "watch", "create", "update", "patch"]
  }

  rule {
    api_groups = ["batch"]
    resources  = ["jobs"]
    verbs      = ["get", "list", "watch", "create", "update", "patch", "delete"]
  }

  # rollout status/undo read the Deployments' ReplicaSets; the deploy job
  # prints the failed migration's pod logs.
  rule {
    api_groups = ["apps"]
    resources  = ["replicasets"]
    verbs      = ["get", "list", "watch"]
  }

  rule {
    api_groups = [""]
    resources  = ["pods", "pods/log"]
    verbs      = ["get", "list", "watch"]
  }
}

resource "kubernetes_role_binding_v1" "deployer" {
  metadata {
    name      = "figachechnaya-ci-deployer"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }

  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Role"
    name      = kubernetes_role_v1.deployer.metadata[0].name
  }

  subject {
    kind      = "ServiceAccount"
    name      = kubernetes_service_account_v1.deployer.metadata[0].name
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
}
