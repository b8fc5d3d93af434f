# One environment of the app: the Kustomize overlay with the image set,
# applied in the provider's dependency order (namespace first), plus the
# figachechnaya-secrets Secret that the overlay only names. The Secret's
# values come from the other modules' outputs; none is written in code.

data "kustomization_overlay" "this" {
  resources = [var.overlay_path]

  images {
    name     = "figachechnaya"
    new_name = var.image_repository
    new_tag  = var.image_tag
  }
}

resource "kustomization_resource" "p0" {
  for_each = data.kustomization_overlay.this.ids_prio[0]

  manifest = data.kustomization_overlay.this.manifests[each.value]
}

# Signs the form's CSRF tokens; every app replica must share it.
resource "random_password" "secret_key" {
  length  = 48
  special = false
}

resource "kubernetes_secret_v1" "settings" {
  metadata {
    name      = "figachechnaya-secrets"
    namespace = var.namespace
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

  depends_on = [kustomization_resource.p0]
}

resource "kustomization_resource" "p1" {
  for_each = data.kustomization_overlay.this.ids_prio[1]

  manifest = data.kustomization_overlay.this.manifests[each.value]

  depends_on = [kubernetes_secret_v1.settings]
}

resource "kustomization_resource" "p2" {
  for_each = data.kustomization_overlay.this.ids_prio[2]

  manifest = data.kustomization_overlay.this.manifests[each.value]

  depends_on = [kustomization_resource.p1]
}
