terraform {
  required_providers {
    kubernetes = {
      source = "hashicorp/kubernetes"
    }
    kustomization = {
      source = "kbst/kustomization"
    }
    random = {
      source = "hashicorp/random"
    }
  }
}
