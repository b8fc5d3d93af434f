# The public zone and one A record per environment, all pointing at the
# ingress load balancer; cert-manager's HTTP-01 challenges follow them.

resource "yandex_dns_zone" "this" {
  name   = replace(var.domain, ".", "-")
  zone   = "${var.domain}."
  public = true
  labels = var.labels
}

resource "yandex_dns_recordset" "ingress" {
  for_each = var.records

  zone_id = yandex_dns_zone.this.id
  name    = "${each.value}."
  type    = "A"
  ttl     = 300
  data    = [var.ingress_ip]
}
