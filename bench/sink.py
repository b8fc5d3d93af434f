"""The benchmark's object store: Debian's nginx, whose WebDAV module stores each PUT.

Why not moto, as the tests use: on the bench machine moto's S3 server spends
~4 ms of CPU on each 30 KB PUT (Python, and werkzeug closes the connection after
every answer, so each upload also opens a new one), more than a worker's whole
pipeline around the card. The bench measures the workers on the same two cores,
so moto would measure itself. A real object store is another machine; nginx
costs ~0.09 ms a PUT here (objects in memory; ~0.16 ms on disk), which is as
near to "not on our cores" as this machine gets.

What the sink answers is what the bench's processes ask: an S3 path-style
PutObject (`PUT /<bucket>/<key>`: nginx writes the body to `<root>/<bucket>/<key>`,
making the folders, and answers 201 or 204, which `app.s3_put` takes as stored)
and GetObject. The objects are kept in memory (/dev/shm) where there is one. It
checks no signature (moto checks none either). It cannot list a bucket, so the
app's `/readyz` shows the store as not ok in the bench (its readiness does not
depend on it); the bench counts the stored pictures from the folder instead
(`count`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import uuid
from pathlib import Path

from tests.services.ports import LOCALHOST, accepts, free_port
from tests.services.processes import ServerProcess, make_workdir

FAKE_KEY = "bench"
FAKE_SECRET = "bench-secret"  # noqa: S105  (the sink checks no signature)

_CONFIG = """\
{user}worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {store}/upload;
  client_max_body_size 16m;
  client_body_buffer_size 1m;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  server {{
    listen {host}:{port};
    root {store}/objects;
    location / {{
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw;
    }}
  }}
}}
"""


class ObjectSink:
    """nginx on a free loopback port, storing objects under its own work folder."""

    def __init__(self) -> None:
        self.workdir = make_workdir("sink")
        self.host = LOCALHOST
        self.port = free_port()
        self.endpoint_url = f"http://{self.host}:{self.port}"
        # In memory where there is a tmpfs: a store's disk is not the bench machine's to pay.
        shm = Path("/dev/shm")  # noqa: S108  (a folder of our own is made in it)
        memory = shm.is_dir() and os.access(shm, os.W_OK)
        self._store = (
            Path(tempfile.mkdtemp(prefix="figa-sink-", dir=shm)) if memory else self.workdir
        )
        self._objects = self._store / "objects"
        self._server: ServerProcess | None = None

    def start(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise RuntimeError("nginx is not installed: apt-get install -y nginx")
        (self._store / "upload").mkdir(exist_ok=True)
        self._objects.mkdir(exist_ok=True)
        config = self.workdir / "nginx.conf"
        # Run as root (CI), nginx's workers would be "nobody", who cannot write our folder.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        config.write_text(
            _CONFIG.format(
                user=user, root=self.workdir, store=self._store, host=self.host, port=self.port
            )
        )
        argv = [binary, "-c", str(config), "-p", str(self.workdir), "-g", "daemon off;"]
        self._server = ServerProcess("nginx (object sink)", argv, self.workdir / "nginx.log")
        self._server.spawn()
        self._server.wait_ready(
            lambda: accepts(self.host, self.port), timeout=15.0, what="accepting"
        )

    @property
    def pid(self) -> int | None:
        return self._server.pid if self._server is not None else None

    def create_bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex}"
        (self._objects / name).mkdir()
        return name

    def count(self, prefix: str) -> int:
        """Objects stored under `<bucket>/<prefix>` (nginx writes them whole, by rename)."""
        folder = self._objects / prefix
        return sum(len(files) for _, _, files in os.walk(folder)) if folder.exists() else 0

    def credentials_environment(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": FAKE_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET}

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        shutil.rmtree(self._store if self._store != self.workdir else self._objects, True)
