# Remote state in a Yandex Object Storage bucket through the S3 backend.
# Created once by hand (versioned, encrypted, private) before the first init;
# its name and credentials are not in the code:
#   export AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=…   # the state bucket's key
#   terraform init -backend-config="bucket=$TF_STATE_BUCKET"
# `use_lockfile` locks the state with a conditional write next to it.
terraform {
  backend "s3" {
    key    = "figachechnaya/terraform.tfstate"
    region = "ru-central1"
    endpoints = {
      s3 = "https://storage.yandexcloud.net"
    }
    use_lockfile                = true
    skip_region_validation      = true
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_metadata_api_check     = true
    skip_s3_checksum            = true
  }
}
