variable "namespace" {
  description = "Namespace of the environment (the overlay's `namespace:`)."
  type        = string
}

variable "database_url" {
  description = "FIGA_DATABASE_URL."
  type        = string
  sensitive   = true
}

variable "kafka_bootstrap_servers" {
  description = "FIGA_KAFKA_BOOTSTRAP_SERVERS."
  type        = string
}

variable "kafka_username" {
  description = "FIGA_KAFKA_SASL_USERNAME."
  type        = string
}

variable "kafka_password" {
  description = "FIGA_KAFKA_SASL_PASSWORD."
  type        = string
  sensitive   = true
}

variable "kafka_ca_certificate" {
  description = "PEM root CA of the managed Kafka's brokers (ca.crt of the figachechnaya-kafka-ca ConfigMap)."
  type        = string
}

variable "s3_access_key_id" {
  description = "AWS_ACCESS_KEY_ID for Object Storage."
  type        = string
  sensitive   = true
}

variable "s3_secret_access_key" {
  description = "AWS_SECRET_ACCESS_KEY for Object Storage."
  type        = string
  sensitive   = true
}
