"""Every setting of the service, read from the environment in one place.

`Settings.from_env` is the only reader of `os.environ` in the code base
(twelve-factor); everything else receives a `Settings`. Each field documents
its variable; the README's settings table mirrors this file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

PREFIX = "FIGA_"


class SettingsError(ValueError):
    """A variable that is set but unusable; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    # FIGA_DATABASE_URL: SQLAlchemy async URL; SQLite file under ./var/ when unset.
    database_url: str = "sqlite+aiosqlite:///var/figachechnaya.sqlite3"
    # FIGA_KAFKA_BOOTSTRAP_SERVERS: "host:port,…"; empty → in-process queue and worker.
    kafka_bootstrap_servers: str = ""
    # FIGA_KAFKA_TOPIC: the image job topic.
    kafka_topic: str = "figachechnaya.images"
    # FIGA_KAFKA_GROUP_ID: the workers' consumer group.
    kafka_group_id: str = "figachechnaya-workers"
    # FIGA_KAFKA_IDEMPOTENCE: idempotent producer; keep on in production
    # (off only for brokers that refuse it, such as the Tansu test broker).
    kafka_idempotence: bool = True
    # FIGA_KAFKA_TOPIC_PARTITIONS: partitions when the worker creates a missing topic;
    # the most worker replicas that can share the work.
    kafka_topic_partitions: int = 12
    # FIGA_KAFKA_SESSION_TIMEOUT_MS / _HEARTBEAT_INTERVAL_MS: how fast the group notices a
    # dead worker and hands its partitions over.
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    # FIGA_KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    kafka_security_protocol: str = "PLAINTEXT"
    # FIGA_KAFKA_SSL_CAFILE: CA bundle for SSL/SASL_SSL (e.g. a cloud's own root CA);
    # empty → the system's trusted CAs.
    kafka_ssl_cafile: str = ""
    # FIGA_KAFKA_SASL_MECHANISM / _USERNAME / _PASSWORD: for managed Kafka.
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    # FIGA_IMAGE_STORE_URL: fsspec URL of the pictures: a folder or s3://bucket/prefix.
    image_store_url: str = "var/images"
    # FIGA_S3_ENDPOINT_URL: S3-compatible endpoint (MinIO…); empty → AWS.
    s3_endpoint_url: str = ""
    # FIGA_IMAGE_PUBLIC_BASE_URL: where pictures are publicly readable; empty →
    # the app serves folder pictures itself and redirects to presigned S3 URLs.
    image_public_base_url: str = ""
    # FIGA_SCHEMES_FILE: a TOML scheme catalogue replacing the built-in one.
    schemes_file: str = ""
    # FIGA_MAX_PHRASE_LENGTH: input limit in characters, after normalization.
    max_phrase_length: int = 200
    # FIGA_POLL_SECONDS: how often the page polls the hint and the counter.
    poll_seconds: float = 2.0
    # FIGA_LIVE_REFRESH_SECONDS: how often each app process re-reads the newest
    # figalization and the total from the database (shared by all polls).
    live_refresh_seconds: float = 0.5
    # FIGA_IMAGE_RETRY_SECONDS: a picture still pending after this is queued again.
    image_retry_seconds: float = 60.0
    # FIGA_IMAGE_MAX_ATTEMPTS: storage attempts per job before the picture is `failed`.
    image_max_attempts: int = 5
    # FIGA_DB_TIMEOUT_SECONDS: connect and statement timeout; a down database
    # must cost a request this long at most.
    db_timeout_seconds: float = 2.0
    # FIGA_LOG_FORMAT: "console" for people, "json" for log collectors.
    log_format: Literal["console", "json"] = "console"
    # FIGA_LOG_LEVEL: DEBUG, INFO, WARNING…
    log_level: str = "INFO"
    # FIGA_WORKER_METRICS_PORT: the worker's /metrics and /healthz port; 0 disables.
    worker_metrics_port: int = 9100
    # FIGA_WORKER_METRICS_HOST: the address it listens on (0.0.0.0 in containers).
    worker_metrics_host: str = "127.0.0.1"
    # FIGA_RATE_LIMIT_PER_MINUTE: figalizations per client per minute; 0 disables.
    rate_limit_per_minute: int = 0
    # FIGA_SECRET_KEY: signs CSRF tokens; set the same value on every replica
    # (empty → a random key per process, fine for one process).
    secret_key: str = ""
    # FIGA_FORWARDED_ALLOW_IPS: proxies whose X-Forwarded-For/-Proto are trusted
    # (the client address rate limiting uses, and https for HSTS).
    forwarded_allow_ips: str = "127.0.0.1"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build from `FIGA_*` variables; unset ones keep the defaults above."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for spec in fields(cls):
            name = PREFIX + spec.name.upper()
            if name not in env:
                continue
            values[spec.name] = _convert(name, env[name], type(getattr(cls(), spec.name)))
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def to_env(self) -> dict[str, str]:
        """The `FIGA_*` variables that reproduce these settings in another process."""
        env: dict[str, str] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            env[PREFIX + spec.name.upper()] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        return env

    def check(self) -> None:
        """Refuse values that parse but make no sense, naming the variable."""
        if self.log_format not in ("console", "json"):
            raise SettingsError(f"{PREFIX}LOG_FORMAT must be console or json")
        for name in _POSITIVE:
            value = getattr(self, name)
            if not value > 0:  # also refuses NaN
                raise SettingsError(f"{PREFIX}{name.upper()} must be positive, got {value}")

    @property
    def uses_kafka(self) -> bool:
        return bool(self.kafka_bootstrap_servers)

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, so the single-process mode can create its folder."""
        if not self.uses_sqlite or ":memory:" in self.database_url:
            return None
        return Path(self.database_url.split(":///", 1)[1])


_POSITIVE = (
    "max_phrase_length",
    "poll_seconds",
    "live_refresh_seconds",
    "image_retry_seconds",
    "image_max_attempts",
    "db_timeout_seconds",
    "kafka_topic_partitions",
)


def _convert(name: str, raw: str, kind: type) -> object:
    """Numbers and booleans are parsed; strings are kept exactly (passwords may have spaces)."""
    try:
        if kind is bool:
            if raw.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if raw.strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind in (int, float):
            return kind(raw.strip())
    except ValueError as error:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from error
    return raw
