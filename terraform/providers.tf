# Credentials come from the environment, never from these files:
#   YC_SERVICE_ACCOUNT_KEY_FILE — the authorized key (JSON) of the Terraform
#   service account; the provider exchanges it for IAM tokens itself, so no
#   token expires in the middle of a pipeline (in CI: a file variable).
# Kubernetes, Helm and Kustomize reach the cluster's private API endpoint with
# an IAM token of the same identity issued for this run, so terraform runs
# from inside the VPC (the GitLab runner of the deploy stage).
provider "yandex" {
  cloud_id  = var.cloud_id
  folder_id = var.folder_id
  zone      = var.default_zone
}

data "yandex_client_config" "current" {}

locals {
  kubeconfig = yamlencode({
    apiVersion      = "v1"
    kind            = "Config"
    current-context = "figachechnaya"
    clusters = [{
      name = "figachechnaya"
      cluster = {
        server                     = module.kubernetes.endpoint
        certificate-authority-data = base64encode(module.kubernetes.ca_certificate)
      }
    }]
    users = [{
      name = "terraform"
      user = { token = data.yandex_client_config.current.iam_token }
    }]
    contexts = [{
      name    = "figachechnaya"
      context = { cluster = "figachechnaya", user = "terraform" }
    }]
  })
}

provider "kubernetes" {
  host                   = module.kubernetes.endpoint
  cluster_ca_certificate = module.kubernetes.ca_certificate
  token                  = data.yandex_client_config.current.iam_token
}

provider "helm" {
  kubernetes {
    host                   = module.kubernetes.endpoint
    cluster_ca_certificate = module.kubernetes.ca_certificate
    token                  = data.yandex_client_config.current.iam_token
  }
}

provider "kustomization" {
  kubeconfig_raw = local.kubeconfig
}
