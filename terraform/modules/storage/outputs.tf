output "bucket" {
  description = "Bucket name."
  value       = yandex_storage_bucket.images.bucket
}

output "access_key_id" {
  description = "AWS_ACCESS_KEY_ID of the app's service account."
  sensitive   = true
  value       = yandex_iam_service_account_static_access_key.app.access_key
}

output "secret_access_key" {
  description = "AWS_SECRET_ACCESS_KEY of the app's service account."
  sensitive   = true
  value       = yandex_iam_service_account_static_access_key.app.secret_key
}
