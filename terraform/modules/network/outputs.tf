output "network_id" {
  description = "VPC network ID."
  value       = yandex_vpc_network.this.id
}

output "subnet_ids" {
  description = "Availability zone => subnet ID."
  value       = { for zone, subnet in yandex_vpc_subnet.this : zone => subnet.id }
}

output "pod_cidr" {
  description = "Pod CIDR for the Kubernetes cluster."
  value       = var.pod_cidr
}

output "service_cidr" {
  description = "Service CIDR for the Kubernetes cluster."
  value       = var.service_cidr
}

output "ingress_ip" {
  description = "Reserved public address of the ingress load balancer."
  value       = yandex_vpc_address.ingress.external_ipv4_address[0].address
}

output "cluster_security_group_id" {
  description = "Security group of the Kubernetes master."
  value       = yandex_vpc_security_group.cluster.id
}

output "nodes_security_group_id" {
  description = "Security group of the worker nodes."
  value       = yandex_vpc_security_group.nodes.id
}

output "data_security_group_id" {
  description = "Security group of managed PostgreSQL and Kafka."
  value       = yandex_vpc_security_group.data.id
}
