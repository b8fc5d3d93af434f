variable "name" {
  description = "Cluster name."
  type        = string
}

variable "network_id" {
  description = "VPC network ID."
  type        = string
}

variable "subnet_ids" {
  description = "Availability zone => subnet ID; one broker per zone."
  type        = map(string)
}

variable "security_group_ids" {
  description = "Security groups of the brokers."
  type        = list(string)
}

variable "kafka_version" {
  description = "Apache Kafka version: the 3.x line, whose brokers serve every protocol version aiokafka uses."
  type        = string
  default     = "3.9"
}

variable "preset" {
  description = "Broker host class."
  type        = string
  default     = "s3-c2-m8"
}

variable "topics" {
  description = "Topic => partition count."
  type        = map(number)
}

variable "users" {
  description = "Environment => the topic its user may produce to and consume from."
  type        = map(string)
}

variable "labels" {
  description = "Labels of every resource."
  type        = map(string)
}
