variable "folder_id" {
  description = "Folder of the bucket and its service account."
  type        = string
}

variable "bucket_name" {
  description = "Globally unique bucket name."
  type        = string
}

variable "labels" {
  description = "Labels of every resource."
  type        = map(string)
}
