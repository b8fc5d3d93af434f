"""One S3 PutObject, SigV4-signed here and sent on a kept-alive connection (`app.kept_alive`).

The worker writes one object per picture, and through s3fs that write cost more
CPU than anything but the drawing: measured on the bench machine (2-core AMD
EPYC) for a 30 KB object over a kept-alive connection, `pipe_file` takes 1.29 ms
of client CPU (aiobotocore's endpoint rules, event hooks, parameter validation
and response parsing around one HTTP request) where signing the request with
botocore's own SigV4 signer and sending it with aiohttp takes 0.37 ms, and
signing it here and sending it on `app.kept_alive` ~0.15 ms (of which ~0.05 ms is
the signature, its SHA-256 of the body included, and most of the rest the kernel's
loopback). So this one call is made here, and everything else (reads, presigned
URLs, the readiness check, the local folder) stays with s3fs in `app.images`.

The credentials come from aiobotocore's chain, exactly as s3fs resolves them
(environment, config files, container and instance roles; refreshable ones
refreshed on use). The request is signed here (`sign`, AWS Signature Version 4
with the payload hashed, as botocore signs an S3 PUT): botocore's signer took
0.4 ms of the ~0.9 ms a picture's pipeline cost around the card in the
worker's profile, and this one takes ~0.03 ms. Two tests hold it to the
standard: it gives botocore's own `Authorization` for the same request and
moment (tests/unit/test_s3_signing.py), and a server that recomputes every
signature from the request as it arrived accepts it
(tests/integration/test_s3_put.py). The address is path-style,
`<endpoint>/<bucket>/<key>`, which Yandex Object Storage, MinIO and moto answer:
this path is used only when `FIGA_S3_ENDPOINT_URL` names the endpoint.

A connection the store closed while it sat in the pool fails the request sent
on it; `app.kept_alive` sends it (a PUT is idempotent) once more on a new
connection then (tested: tests/integration/test_s3_put.py). Every other failure
is the caller's to retry (the worker's `RetryPolicy`), and the caller bounds the
whole call in time.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import re
from urllib.parse import quote, urlsplit

from aiobotocore.session import AioSession
from botocore.credentials import ReadOnlyCredentials

from app.kept_alive import KeptAlive, request_head
from app.outages import ImageStoreUnavailable

DEFAULT_REGION = "us-east-1"  # botocore's own default for S3 when none is configured
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")


class SignedPut:
    """PUTs objects to one S3 endpoint; its credentials are looked up on first use."""

    def __init__(self, endpoint_url: str, *, connect_timeout: float) -> None:
        self._endpoint = endpoint_url.rstrip("/")
        self._prefix = urlsplit(self._endpoint).path  # an endpoint's own path, if it has one
        self._connections = KeptAlive(self._endpoint, connect_timeout=connect_timeout)
        # Made on the first PUT: the app builds an image store too, and never PUTs outside
        # the single-process mode.
        self._botocore: AioSession | None = None
        self._region = DEFAULT_REGION

    async def put(self, bucket: str, key: str, body: bytes, *, content_type: str) -> None:
        path = f"/{quote(bucket)}/{quote(key, safe='/~')}"
        url = self._endpoint + path
        headers = sign(
            "PUT",
            url,
            body,
            content_type=content_type,
            credentials=await self._credentials(),
            region=self._region,
            now=datetime.datetime.now(datetime.UTC),
        )
        head = request_head("PUT", self._prefix + path, headers, len(body))
        answer = await self._connections.request(head, body)
        if not 200 <= answer.status < 300:  # S3 says 200; any 2xx is stored in HTTP
            found = _ERROR_CODE.search(answer.body)
            code = found.group(1).decode("ascii", "replace") if found else "no error code"
            raise ImageStoreUnavailable(f"PUT {url}: HTTP {answer.status} ({code})")

    async def _credentials(self) -> ReadOnlyCredentials:
        """Looked up on every PUT: the chain caches static keys and refreshes expiring ones."""
        if self._botocore is None:
            self._botocore = AioSession()
            self._region = str(self._botocore.get_config_variable("region") or DEFAULT_REGION)
        found = await self._botocore.get_credentials()
        if found is None:
            raise ImageStoreUnavailable("no S3 credentials (AWS_ACCESS_KEY_ID and the rest)")
        frozen: ReadOnlyCredentials = await found.get_frozen_credentials()
        return frozen

    async def close(self) -> None:
        self._connections.close()


def sign(
    method: str,
    url: str,
    body: bytes,
    *,
    content_type: str,
    credentials: ReadOnlyCredentials,
    region: str,
    now: datetime.datetime,
) -> dict[str, str]:
    """The headers of a SigV4-signed S3 request (Host included, so that what is sent is what
    was signed). `url` is already percent-encoded once, as S3 wants its path; no query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None and (parts.scheme, parts.port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{parts.port}"
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    payload = hashlib.sha256(body).hexdigest()
    headers = {
        "content-type": content_type,
        "host": host,
        "x-amz-content-sha256": payload,
        "x-amz-date": stamp,
    }
    if credentials.token:
        headers["x-amz-security-token"] = credentials.token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(
        [
            method,
            parts.path or "/",
            "",
            "".join(f"{n}:{headers[n]}\n" for n in names),
            signed,
            payload,
        ]
    )
    scope = f"{stamp[:8]}/{region}/s3/aws4_request"
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{digest}"
    key = _signing_key(credentials.secret_key, stamp[:8], region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return headers


@functools.lru_cache(maxsize=8)
def _signing_key(secret: str, day: str, region: str) -> bytes:
    """The key SigV4 derives from the secret for one day and region, as AWS suggests,
    derived once: four HMACs a PUT saved (a rotated secret is another entry)."""
    key = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
