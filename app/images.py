"""The image store: one fsspec implementation for a local folder and for S3.

Keys are derived from the figalization id (`domain.figalization.image_key`),
so writing the same picture twice overwrites one object. S3 goes through
s3fs's async API on the running loop; the local filesystem is synchronous and
runs in a thread so a slow disk never blocks the event loop. Everything
S3-specific (endpoint, checksums, timeouts, presigned URLs) stays in this
module; callers see the `ImageStore` protocol and `ImageStoreUnavailable`.

Every S3 call ends within `FIGA_S3_TIMEOUT_SECONDS`, whatever the link does:
botocore's connect and read timeouts alone do not bound an upload over a link
that silently drops packets: aiohttp waits for the answer to the upload's
`Expect: 100-continue`, and for the body to drain, without any timeout, and
starts its read timeout only once the body is sent (measured: an upload to a
peer that stays silent waited for good). So the whole call, botocore's own
retries included, runs under one deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

import fsspec
from fsspec.asyn import AsyncFileSystem

from app.outages import ImageStoreUnavailable
from app.s3_put import SignedPut
from app.settings import Settings

PRESIGNED_SECONDS = 3600
CONNECT_TIMEOUT_SECONDS = 3.0  # a TCP handshake within a region takes milliseconds
PNG = "image/png"
T = TypeVar("T")


class ImageStore(Protocol):
    async def put(self, key: str, png: bytes) -> None: ...
    async def read(self, key: str) -> bytes: ...
    async def public_url(self, key: str) -> str | None: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


class FsspecImageStore:
    def __init__(self, settings: Settings) -> None:
        protocol, root = fsspec.core.split_protocol(settings.image_store_url)
        self._local = settings.uses_image_folder
        self._root = root.rstrip("/")
        self._public_base = settings.image_public_base_url.rstrip("/")
        self._timeout = settings.s3_timeout_seconds
        options: dict[str, Any] = {"skip_instance_cache": True}  # one instance per event loop
        if self._local:
            options["auto_mkdir"] = True
        else:
            options |= {"asynchronous": True, "use_listings_cache": False}
            if settings.s3_endpoint_url:
                options["client_kwargs"] = {"endpoint_url": settings.s3_endpoint_url}
            # botocore ≥ 1.36 adds checksums that MinIO and other S3 clones reject.
            options["config_kwargs"] = {
                "request_checksum_calculation": "when_required",
                "response_checksum_validation": "when_required",
                "connect_timeout": min(CONNECT_TIMEOUT_SECONDS, self._timeout),
                "read_timeout": self._timeout,
                "retries": {"max_attempts": 2},
            }
        self._fs = fsspec.filesystem(protocol or "file", **options)
        # The worker's one write per picture, made cheaply (app/s3_put.py) where it can be.
        self._signed_put: SignedPut | None = None
        if not self._local:
            # s3fs retries on its own too; the worker's RetryPolicy is the one retry loop.
            self._fs.retries = 1
            if settings.s3_endpoint_url:
                connect = min(CONNECT_TIMEOUT_SECONDS, self._timeout)
                self._signed_put = SignedPut(settings.s3_endpoint_url, connect_timeout=connect)

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    async def put(self, key: str, png: bytes) -> None:
        if self._signed_put is not None:
            bucket, _, path = self._path(key).partition("/")
            await self._bounded("put", self._signed_put.put(bucket, path, png, content_type=PNG))
            return
        await self._call("pipe_file", self._path(key), png, **self._put_options())

    def _put_options(self) -> dict[str, Any]:
        return {} if self._local else {"ContentType": PNG}

    async def read(self, key: str) -> bytes:
        data = await self._call("cat_file", self._path(key))
        return bytes(data)

    async def public_url(self, key: str) -> str | None:
        """Where a browser can fetch the picture directly; None when the app serves it."""
        if self._public_base:
            return f"{self._public_base}/{key}"
        if self._local:
            return None
        url = await self._call("url", self._path(key), expires=PRESIGNED_SECONDS)
        return str(url)

    async def ping(self) -> None:
        if self._local:
            await asyncio.to_thread(self._fs.makedirs, self._root, exist_ok=True)
            return
        await self._call("info", self._root.split("/", 1)[0])

    async def close(self) -> None:
        if self._signed_put is not None:
            await self._signed_put.close()
        if isinstance(self._fs, AsyncFileSystem) and getattr(self._fs, "_s3", None) is not None:
            await self._fs._s3.close()

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self._fs, AsyncFileSystem) and self._fs.asynchronous:
            return await self._bounded(method, getattr(self._fs, "_" + method)(*args, **kwargs))
        try:
            return await asyncio.to_thread(getattr(self._fs, method), *args, **kwargs)
        except FileNotFoundError:
            raise
        except Exception as error:  # OS errors mean "not now"
            raise ImageStoreUnavailable(f"{method}: {error!r}") from error

    async def _bounded(self, method: str, call: Awaitable[T]) -> T:
        """One S3 call within the store's deadline; whatever fails it means "not now"."""
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except (FileNotFoundError, ImageStoreUnavailable):
            raise
        except TimeoutError as error:
            answer = f"{method}: no answer within {self._timeout:g} s"
            raise ImageStoreUnavailable(answer) from error
        except Exception as error:  # botocore, aiohttp and OS errors alike
            raise ImageStoreUnavailable(f"{method}: {error!r}") from error
