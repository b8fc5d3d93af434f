variable "name" {
  description = "Cluster name."
  type        = string
}

variable "network_id" {
  description = "VPC network ID."
  type        = string
}

variable "subnet_ids" {
  description = "Availability zone => subnet ID; one host per zone."
  type        = map(string)
}

variable "security_group_ids" {
  description = "Security groups of the hosts."
  type        = list(string)
}

variable "postgresql_version" {
  description = "PostgreSQL major version (the tests run against 16)."
  type        = string
  default     = "16"
}

variable "preset" {
  description = "Host class."
  type        = string
}

variable "disk_size" {
  description = "Disk per host, GB."
  type        = number
  default     = 20
}

variable "databases" {
  description = "Environment => database name; each gets its own owner user."
  type        = map(string)
}

variable "max_connections" {
  description = "max_connections of every host."
  type        = number
}

variable "connection_limits" {
  description = "Environment => connection limit of its user (keys as in databases)."
  type        = map(number)

  validation {
    condition     = alltrue([for limit in values(var.connection_limits) : limit > 0])
    error_message = "Every connection limit must be positive."
  }
}

variable "labels" {
  description = "Labels of every resource."
  type        = map(string)
}
