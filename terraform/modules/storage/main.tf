# The picture bucket: private (the app hands out presigned URLs), encrypted
# with a KMS key, unfinished uploads cleaned up. The app and workers write
# with the static key of their own service account, which may touch this
# bucket only.

resource "yandex_iam_service_account" "app" {
  name        = "figachechnaya-app"
  description = "Identity of the app and workers in Object Storage."
}

resource "yandex_iam_service_account_static_access_key" "app" {
  service_account_id = yandex_iam_service_account.app.id
  description        = "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY of the figachechnaya-secrets Secret"
}

resource "yandex_kms_symmetric_key" "bucket" {
  name              = "figachechnaya-images"
  description       = "Encrypts the pictures at rest."
  default_algorithm = "AES_256"
  rotation_period   = "8760h"
  labels            = var.labels
}

resource "yandex_kms_symmetric_key_iam_binding" "app" {
  symmetric_key_id = yandex_kms_symmetric_key.bucket.id
  role             = "kms.keys.encrypterDecrypter"
  members          = ["serviceAccount:${yandex_iam_service_account.app.id}"]
}

resource "yandex_storage_bucket" "images" {
  bucket    = var.bucket_name
  folder_id = var.folder_id
  tags      = var.labels

  anonymous_access_flags {
    read        = false
    list        = false
    config_read = false
  }

  # The app's service account may read, write and list this bucket only.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { CanonicalUser = yandex_iam_service_account.app.id }
      Action    = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"]
      Resource  = ["arn:aws:s3:::${var.bucket_name}", "arn:aws:s3:::${var.bucket_name}/*"]
    }]
  })

  server_side_encryption_configuration {
    rule {
      apply_server_side_encryption_by_default {
        kms_master_key_id = yandex_kms_symmetric_key.bucket.id
        sse_algorithm     = "aws:kms"
      }
    }
  }

  versioning {
    enabled = true
  }

  lifecycle_rule {
    id                                     = "abort-unfinished-uploads"
    enabled                                = true
    abort_incomplete_multipart_upload_days = 2
  }

  lifecycle_rule {
    id      = "expire-old-versions"
    enabled = true

    noncurrent_version_expiration {
      days = 30
    }
  }
}
