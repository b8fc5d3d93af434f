"""S3 for the tests: moto's S3 server in a thread of the test process, or an external store.

Local: the same server `moto.server.ThreadedMotoServer` runs (moto's WSGI app
behind werkzeug), built here so that a port already taken fails `start()` at
once instead of hanging it. It listens on 127.0.0.1 at a port fixed for the
session; `stop()` closes the listening socket, so clients get "connection
refused", and `start()` opens the same port again. Moto keeps its buckets in
process-wide memory, so they survive stop/start and vanish when the test run
ends. Credentials are fake and given to clients explicitly (`storage_options`),
never through the environment.

External (`FIGA_TEST_S3_ENDPOINT_URL`, e.g. MinIO): used as given and never
stopped; credentials as given by the fixture, or the AWS defaults.

Never deletes a bucket it did not create.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from typing import Any

from tests.services.ports import LOCALHOST, accepts, free_port
from tests.services.processes import (
    ControllableService,
    ServerProcess,
    ServiceError,
    make_workdir,
)

FAKE_KEY = "testing"
FAKE_SECRET = "testing"


class S3Service(ControllableService):
    """An S3-protocol server: its endpoint, client options, buckets, and stop/start."""

    def __init__(
        self,
        external_endpoint_url: str | None = None,
        *,
        key: str | None = None,
        secret: str | None = None,
        port: int | None = None,
        host: str = LOCALHOST,
        namespace: str | None = None,
    ) -> None:
        self.controllable = not external_endpoint_url
        self.last_start_seconds: float | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._process: ServerProcess | None = None
        if external_endpoint_url:
            self.endpoint_url = external_endpoint_url
            self.key, self.secret = key, secret
            return
        self.host = host
        self.namespace = namespace  # a tests.services.netns host's, or the test's own
        self.port = port or free_port()
        self.endpoint_url = f"http://{self.host}:{self.port}"
        self.key, self.secret = key or FAKE_KEY, secret or FAKE_SECRET

    @property
    def is_running(self) -> bool:
        if not self.controllable:
            return True
        if self._process is not None:
            return self._process.running
        return self._thread is not None and self._thread.is_alive()

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for `s3fs.S3FileSystem` / fsspec that reach this server.

        Checksums only "when required": botocore >= 1.36 otherwise sends
        checksum headers that S3-compatible stores other than AWS reject.
        """
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url},
            "config_kwargs": {
                "request_checksum_calculation": "when_required",
                "response_checksum_validation": "when_required",
            },
        }

    def credentials_environment(self) -> dict[str, str]:
        """The standard AWS variables for a client configured by environment (the app, a worker)."""
        if self.key is None or self.secret is None:
            return {}
        return {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret}

    def filesystem(self, **overrides: Any) -> Any:
        """A new synchronous `s3fs.S3FileSystem` of its own (not fsspec's cached instance)."""
        import s3fs

        options = {**self.storage_options(), "skip_instance_cache": True, **overrides}
        return s3fs.S3FileSystem(**options)

    def create_bucket(self) -> str:
        """A new empty bucket with a unique name; returns the name."""
        name = f"t-{uuid.uuid4().hex}"
        self.filesystem().mkdir(name)
        return name

    def delete_bucket(self, name: str) -> None:
        """Delete a bucket this service created, with everything in it."""
        filesystem = self.filesystem()
        if filesystem.exists(name):
            filesystem.rm(name, recursive=True)

    def start(self) -> None:
        """Serve on the session's port; fails at once if the port is taken."""
        self._require_control()
        if self.is_running:
            return
        started = time.monotonic()
        if self.namespace is not None:
            self._start_in_namespace()
            self.last_start_seconds = time.monotonic() - started
            return
        from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        # Werkzeug logs every request at INFO; the tests do not need that noise.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = DomainDispatcherApplication(create_backend_app)
        try:
            server = make_server(
                self.host, self.port, app, threaded=True, request_handler=MotoRequestHandler
            )
        except (OSError, SystemExit) as error:
            # For a taken port werkzeug prints why to stderr and exits.
            raise ServiceError(
                f"S3 (moto) cannot listen on {self.endpoint_url} (port taken?): {error!r}"
            ) from error
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="moto-s3", daemon=True
        )
        self._thread.start()
        self.last_start_seconds = time.monotonic() - started

    def _start_in_namespace(self) -> None:
        """Moto as a process of a `tests.services.netns` host (its buckets die with it)."""
        if self._process is None:
            workdir = make_workdir("s3")
            argv = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
            self._process = ServerProcess(
                "S3 (moto)", argv, workdir / "moto.log", namespace=self.namespace
            )
        self._process.spawn()
        self._process.wait_ready(
            lambda: accepts(self.host, self.port), timeout=30.0, what="accepting"
        )

    def stop(self) -> None:
        """Stop serving and close the socket; the buckets stay in moto's memory
        (not so for moto in a namespace: a process of its own, whose buckets end with it)."""
        self._require_control()
        if self._process is not None:
            self._process.stop()
            return
        if self._server is not None:
            self._server.shutdown()  # serve_forever returns and closes the socket
        if self._thread is not None:
            self._thread.join(10.0)
        self._server = self._thread = None

    def close(self) -> None:
        if self.controllable:
            self.stop()

    def describe(self) -> str:
        return f"S3 at {self.endpoint_url}"
