variable "name" {
  description = "Prefix of every resource name."
  type        = string
}

variable "subnets" {
  description = "Availability zone => private subnet CIDR."
  type        = map(string)
}

variable "pod_cidr" {
  description = "Pod addresses of the Kubernetes cluster (must not overlap the subnets); k8s/base sets FIGA_FORWARDED_ALLOW_IPS to it (the ingress controller's pods)."
  type        = string
  default     = "10.112.0.0/16"
}

variable "service_cidr" {
  description = "Service addresses of the Kubernetes cluster."
  type        = string
  default     = "10.96.0.0/16"
}

variable "labels" {
  description = "Labels of every resource."
  type        = map(string)
}
