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

variable "backup_retention_days" {
  description = "Days the daily full backups, and the WAL archived between them, are kept: how far back a point-in-time restore can go."
  type        = number

  validation {
    # The range Managed Service for PostgreSQL accepts.
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 60 && floor(var.backup_retention_days) == var.backup_retention_days
    error_message = "backup_retention_days must be a whole number of days from 7 to 60."
  }
}

variable "backup_window_start_hour" {
  description = "UTC hour at which the daily full backup starts (away from the maintenance window, Monday 03:00)."
  type        = number
  default     = 2

  validation {
    condition     = var.backup_window_start_hour >= 0 && var.backup_window_start_hour <= 23 && floor(var.backup_window_start_hour) == var.backup_window_start_hour
    error_message = "backup_window_start_hour must be an hour from 0 to 23."
  }
}

variable "restore" {
  description = "Create the cluster from this backup, replayed up to `time` (UTC, YYYY-MM-DDTHH:MM:SS; the newest state when null). null: a new, empty cluster. Once a cluster was created so, leave the value as it is: the provider would replace the cluster for any change (deletion_protection refuses that)."
  type = object({
    backup_id = string
    time      = optional(string)
  })
  default = null

  validation {
    condition     = var.restore == null || can(regex("^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}$", coalesce(try(var.restore.time, null), "2000-01-01T00:00:00")))
    error_message = "restore.time is UTC in the form YYYY-MM-DDTHH:MM:SS (the provider's format)."
  }
}

variable "labels" {
  description = "Labels of every resource."
  type        = map(string)
}
