variable "cloud_id" {
  description = "Yandex Cloud cloud ID."
  type        = string
}

variable "folder_id" {
  description = "Yandex Cloud folder that holds every resource of the service."
  type        = string
}

variable "default_zone" {
  description = "Zone for resources that live in one zone."
  type        = string
  default     = "ru-central1-a"
}

variable "subnets" {
  description = "One private subnet per availability zone: zone => CIDR. k8s/base/networkpolicy.yaml allows 10.10.0.0/16."
  type        = map(string)
  default = {
    "ru-central1-a" = "10.10.0.0/24"
    "ru-central1-b" = "10.10.1.0/24"
    "ru-central1-d" = "10.10.2.0/24"
  }
}

variable "domain" {
  description = "Public DNS zone of the service; prod is served at the apex, dev at dev.<domain>."
  type        = string
  default     = "figachechnaya.ru"
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the managed cluster (k8s manifests are validated against it)."
  type        = string
  default     = "1.32"
}

variable "node_count" {
  description = "Autoscaling bounds of the node group in each zone."
  type        = object({ min = number, max = number })
  default     = { min = 1, max = 3 }
}

variable "postgresql_preset" {
  description = "Managed PostgreSQL host class."
  type        = string
  default     = "s3-c2-m8"
}

variable "kafka_topics" {
  description = "Image job topics => partition count. The worker HPA maximum of each environment must not exceed it."
  type        = map(number)
  default = {
    "figachechnaya.images"     = 12
    "figachechnaya.images.dev" = 3
  }
}

variable "bucket_name" {
  description = "Object Storage bucket of the pictures (FIGA_IMAGE_STORE_URL in k8s/base)."
  type        = string
  default     = "figachechnaya-images"
}

variable "postgresql_backup_retention_days" {
  description = "Days the managed PostgreSQL keeps its daily backups and the WAL between them: the point-in-time recovery window (docs/operations.md). Two weeks, so that a bad release noticed after a weekend can still be undone."
  type        = number
  default     = 14

  validation {
    condition     = var.postgresql_backup_retention_days >= 7 && var.postgresql_backup_retention_days <= 60 && floor(var.postgresql_backup_retention_days) == var.postgresql_backup_retention_days
    error_message = "postgresql_backup_retention_days must be a whole number of days from 7 to 60 (the managed service's range)."
  }
}

variable "postgresql_restore" {
  description = "Only for a point-in-time restore (docs/operations.md): the backup ID (yc managed-postgresql backup list) and the UTC time (YYYY-MM-DDTHH:MM:SS) the new cluster is restored to. null: the cluster is created empty."
  type = object({
    backup_id = string
    time      = optional(string)
  })
  default = null
}

variable "postgresql_max_connections" {
  description = "max_connections of each PostgreSQL host, set explicitly rather than left to the host class's default: the connection budget of docs/capacity.md is written against it."
  type        = number
  default     = 200
}

variable "database_connection_limits" {
  description = "Per environment, the connection limit of its database user. Their sum plus a margin of 15 (the managed service's own users, an operator's psql) stays within postgresql_max_connections."
  type        = object({ prod = number, dev = number })
  default     = { prod = 160, dev = 25 }

  validation {
    condition     = var.database_connection_limits.prod + var.database_connection_limits.dev + 15 <= var.postgresql_max_connections
    error_message = "The users' connection limits plus a margin of 15 exceed postgresql_max_connections."
  }
}

variable "kafka_ca_url" {
  description = "Where Yandex Cloud publishes the root CA of its managed Kafka (and PostgreSQL) certificates."
  type        = string
  default     = "https://storage.yandexcloud.net/cloud-certs/CA.pem"
}

variable "kafka_ca_certificate" {
  description = "The managed Kafka's root CA as PEM, instead of fetching kafka_ca_url (for runners without internet access)."
  type        = string
  default     = null
}
