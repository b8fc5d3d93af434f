variable "domain" {
  description = "Public DNS zone, without the trailing dot."
  type        = string
}

variable "records" {
  description = "Environment => host name served by the ingress."
  type        = map(string)
}

variable "ingress_ip" {
  description = "Public address of ingress-nginx."
  type        = string
}

variable "labels" {
  description = "Labels of every resource."
  type        = map(string)
}
