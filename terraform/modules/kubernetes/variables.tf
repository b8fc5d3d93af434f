variable "name" {
  description = "Prefix of every resource name."
  type        = string
}

variable "folder_id" {
  description = "Folder where the service accounts get their roles."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of master and nodes."
  type        = string
}

variable "network_id" {
  description = "VPC network ID."
  type        = string
}

variable "subnet_ids" {
  description = "Availability zone => subnet ID; the master and nodes span them all."
  type        = map(string)
}

variable "cluster_sg_ids" {
  description = "Security groups of the master."
  type        = list(string)
}

variable "node_sg_ids" {
  description = "Security groups of the nodes."
  type        = list(string)
}

variable "cluster_ipv4_range" {
  description = "Pod CIDR."
  type        = string
}

variable "service_ipv4_range" {
  description = "Service CIDR."
  type        = string
}

variable "node_count" {
  description = "Autoscaling bounds of the node group in each zone."
  type        = object({ min = number, max = number })
}

variable "node_platform" {
  description = "Compute platform of the nodes."
  type        = string
  default     = "standard-v3"
}

variable "node_resources" {
  description = "vCPU and memory (GB) of each node."
  type        = object({ cores = number, memory = number })
  default     = { cores = 4, memory = 8 }
}

variable "labels" {
  description = "Labels of every resource."
  type        = map(string)
}
