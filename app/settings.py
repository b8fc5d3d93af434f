"""Every setting of the service, read from the environment in one place.

`Settings.from_env` is the only reader of `os.environ` in the code base
(twelve-factor); everything else receives a `Settings`. A field's variable is
`FIGA_` and its name in capitals; its type and constraints are the validation
(pydantic), and the comment above it is its documentation, which the README's
settings table mirrors. `Settings(**fields)` takes exactly the fields given
and the defaults, never the environment. `refuse_unsafe` refuses, before a
command starts, combinations of valid values that would start and then go
wrong quietly.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AliasGenerator,
    BeforeValidator,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

PREFIX = "FIGA_"

Command = Literal["serve", "worker", "migrate"]


def variable(field_name: str) -> str:
    """The environment variable of a field: `poll_seconds` → `FIGA_POLL_SECONDS`."""
    return PREFIX + field_name.upper()


def _stripped(value: object) -> object:
    """Spaces around a number or a flag are a typing accident; text is kept exactly
    (a password may have spaces)."""
    return value.strip() if isinstance(value, str) else value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _public_base_url(value: str) -> str:
    """Every absolute link is this plus a path: so a scheme and a host, nothing after the
    path, and no trailing slash (`https://x.ru/` and `https://x.ru` are one base)."""
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "must be an absolute http:// or https:// URL, e.g. https://figachechnaya.ru"
        )
    if "?" in value or "#" in value:
        raise ValueError("must have no query (?…) or fragment (#…): links append paths to it")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must carry no user name or password: it is shown in every page")
    _ = parts.port  # a port that is not a number raises ValueError
    return value.rstrip("/")


def _proxy_addresses(value: str) -> str:
    """The proxies as uvicorn reads them: addresses and networks, comma-separated. uvicorn
    quietly takes a malformed entry (`10.0.0.1/8`) for a name that never matches, and
    `*` for "believe every X-Forwarded-For", whose first entry the client writes itself:
    both are refused here instead."""
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if "*" in entries:
        raise ValueError(
            "'*' believes any client's X-Forwarded-For, so every client picks the address"
            " the rate limit counts: list the proxies' addresses or networks (nginx's, the"
            " ingress controller's pods), e.g. 10.112.0.0/16"
        )
    for entry in entries:
        ipaddress.ip_network(entry)  # strict: host bits set → ValueError, as uvicorn's check
    return ",".join(entries)


def listening_url(host: str, port: int) -> str:
    """`http://host:port` of a listening address, a wildcard (all interfaces) as 127.0.0.1."""
    try:
        everywhere = not host or ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a name, such as localhost
        everywhere = False
    if everywhere:
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


Flag = Annotated[bool, BeforeValidator(_stripped)]  # 1/0, true/false, yes/no, on/off
Count = Annotated[int, Field(gt=0)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Text = Annotated[str, Field(min_length=1)]
Port = Annotated[int, Field(ge=0, le=65535)]  # 0: not listening at all
LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
]


class SettingsError(ValueError):
    """A variable that is set but unusable, or settings unsafe together; the message
    names the variables."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        # Each field is read from exactly FIGA_<NAME>, in capitals, as the README spells it.
        env_prefix=PREFIX,
        env_prefix_target="all",
        case_sensitive=True,
        alias_generator=AliasGenerator(validation_alias=str.upper),
        validate_by_name=True,
    )

    # FIGA_DATABASE_URL: SQLAlchemy async URL; SQLite file under ./var/ when unset.
    database_url: Text = "sqlite+aiosqlite:///var/figachechnaya.sqlite3"
    # FIGA_KAFKA_BOOTSTRAP_SERVERS: "host:port,…"; empty → in-process queue and worker.
    kafka_bootstrap_servers: str = ""
    # FIGA_KAFKA_TOPIC: the image job topic.
    kafka_topic: Text = "figachechnaya.images"
    # FIGA_KAFKA_GROUP_ID: the workers' consumer group.
    kafka_group_id: Text = "figachechnaya-workers"
    # FIGA_KAFKA_IDEMPOTENCE: idempotent producer; keep on in production
    # (off only for brokers that refuse it, such as the Tansu test broker).
    kafka_idempotence: Flag = True
    # FIGA_KAFKA_TOPIC_PARTITIONS: partitions when the worker creates a missing topic;
    # the most worker replicas that can share the work.
    kafka_topic_partitions: Count = 12
    # FIGA_KAFKA_SESSION_TIMEOUT_MS / _HEARTBEAT_INTERVAL_MS: how fast the group notices a
    # dead worker and hands its partitions over; the heartbeat must be the shorter.
    kafka_session_timeout_ms: Count = 10_000
    kafka_heartbeat_interval_ms: Count = 3_000
    # FIGA_KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # FIGA_KAFKA_SSL_CAFILE: CA bundle for SSL/SASL_SSL (e.g. a cloud's own root CA);
    # empty → the system's trusted CAs.
    kafka_ssl_cafile: str = ""
    # FIGA_KAFKA_SASL_MECHANISM / _USERNAME / _PASSWORD: for managed Kafka; the
    # mechanisms that log in with a user name and a password.
    kafka_sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = Field("", repr=False)
    # FIGA_IMAGE_STORE_URL: fsspec URL of the pictures: a folder or s3://bucket/prefix.
    image_store_url: Text = "var/images"
    # FIGA_S3_ENDPOINT_URL: S3-compatible endpoint (MinIO…); empty → AWS.
    s3_endpoint_url: str = ""
    # FIGA_S3_TIMEOUT_SECONDS: the most one object-store call may take, botocore's own
    # retries included; over a silent link an upload otherwise waits forever (for the
    # answer to its `Expect: 100-continue`). A picture's attempt costs this at most.
    s3_timeout_seconds: Seconds = 10.0
    # FIGA_IMAGE_PUBLIC_BASE_URL: where pictures are publicly readable; empty →
    # the app serves folder pictures itself and redirects to presigned S3 URLs.
    image_public_base_url: str = ""
    # FIGA_SCHEMES_FILE: a TOML scheme catalogue replacing the built-in one.
    schemes_file: str = ""
    # FIGA_MAX_PHRASE_LENGTH: input limit in characters, after normalization.
    max_phrase_length: Count = 200
    # FIGA_POLL_SECONDS: how often the page polls the hint and the counter.
    poll_seconds: Seconds = 2.0
    # FIGA_LIVE_REFRESH_SECONDS: how often each app process re-reads the newest
    # figalization and the total from the database (shared by all polls).
    live_refresh_seconds: Seconds = 0.5
    # FIGA_IMAGE_RETRY_SECONDS: a picture still pending after this is queued again.
    image_retry_seconds: Seconds = 60.0
    # FIGA_OUTBOX_HANDOFF_GRACE_SECONDS: an outbox row no relay deleted after this long is
    # swept and published (its replica died, or its commit was never confirmed). Shorter
    # than the queue's 10 s send timeout, a job still being sent may go out twice.
    outbox_handoff_grace_seconds: Seconds = 30.0
    # FIGA_IMAGE_MAX_ATTEMPTS: storage attempts per job before the picture is `failed`.
    image_max_attempts: Count = 5
    # FIGA_DB_TIMEOUT_SECONDS: connect and statement timeout; a down database
    # must cost a request this long at most.
    db_timeout_seconds: Seconds = 2.0
    # FIGA_HEADER_TIMEOUT_SECONDS: `serve` closes a connection whose request line and
    # headers have not all arrived this long after it opened or the request began.
    header_timeout_seconds: Seconds = 10.0
    # FIGA_LOG_FORMAT: "console" for people, "json" for log collectors.
    log_format: Literal["console", "json"] = "console"
    # FIGA_LOG_LEVEL: DEBUG, INFO, WARNING, ERROR or CRITICAL, in any case.
    log_level: LogLevel = "INFO"
    # FIGA_METRICS_PORT: the app's operations port, serving GET /metrics (Prometheus
    # text) apart from the public port, which serves no metrics; 0 disables. One port
    # per process: with a port, `serve --workers N>1` is refused (scale by replicas).
    metrics_port: Port = 9101
    # FIGA_METRICS_HOST: the address the app's operations port listens on (0.0.0.0 in
    # containers, where Prometheus scrapes it through the Service's `metrics` port).
    metrics_host: Text = "127.0.0.1"
    # FIGA_WORKER_METRICS_PORT: the worker's /metrics and /healthz port; 0 disables.
    worker_metrics_port: Port = 9100
    # FIGA_WORKER_METRICS_HOST: the address it listens on (0.0.0.0 in containers).
    worker_metrics_host: Text = "127.0.0.1"
    # FIGA_WORKER_STALL_SECONDS: the worker's /healthz answers 503 once its consume loop
    # has not been seen alive for this long (hung: restart it). Keep it above what may
    # pass between two signs of life: a batch, a retry backoff (5 s), a broker
    # connection attempt (10 s request timeout) and its backoff (10 s).
    worker_stall_seconds: Seconds = 60.0
    # FIGA_DB_POOL_SIZE / FIGA_DB_POOL_OVERFLOW: PostgreSQL connections each process keeps
    # pooled, and may open beyond them under load; the app's group commit holds one more.
    # Replicas × (size + overflow + 1) must stay under the server's connection limit.
    db_pool_size: Count = 10
    db_pool_overflow: Annotated[int, Field(ge=0)] = 10
    # FIGA_RATE_LIMIT_PER_MINUTE: figalizations per client per minute; 0 disables.
    rate_limit_per_minute: Annotated[int, Field(ge=0)] = 0
    # FIGA_SECRET_KEY: signs CSRF tokens; set the same value on every replica (empty →
    # `serve` draws one random key for all its processes, which a restart forgets).
    secret_key: str = Field("", repr=False)
    # FIGA_FORWARDED_ALLOW_IPS: the proxies (addresses or networks, comma-separated) whose
    # X-Forwarded-For/-Proto are believed; the client is the right-most address of
    # X-Forwarded-For that is none of them (rate limits count it; https turns on HSTS and
    # Secure cookies). `*` is refused; empty → no proxy is believed.
    forwarded_allow_ips: Annotated[str, AfterValidator(_proxy_addresses)] = "127.0.0.1"
    # FIGA_PUBLIC_BASE_URL: the address clients use (https://figachechnaya.ru): every
    # absolute link (Open Graph, API picture URLs) starts with it, never with the request's
    # Host header, which the client writes. Empty → `serve`'s own http://HOST:PORT.
    public_base_url: Annotated[str, AfterValidator(_public_base_url)] = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """`Settings(**fields)` is those fields and the defaults: only `from_env` reads
        variables, so a test's settings never pick up the developer's environment."""
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build from `FIGA_*` variables (the process's, or `environ`); unset ones keep
        the defaults. Unusable values raise one `SettingsError` naming each variable."""
        variables = _Variables(cls, os.environ if environ is None else environ)
        try:
            return cls(**variables())
        except ValidationError as error:
            raise SettingsError("; ".join(map(_explain, error.errors()))) from None

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> Settings:
        if self.kafka_heartbeat_interval_ms >= self.kafka_session_timeout_ms:
            raise ValueError(
                f"{variable('kafka_heartbeat_interval_ms')} ({self.kafka_heartbeat_interval_ms})"
                f" must be shorter than {variable('kafka_session_timeout_ms')}"
                f" ({self.kafka_session_timeout_ms}): a worker would be declared dead"
                " between two of its own heartbeats"
            )
        return self

    @property
    def public_base(self) -> str:
        """The start of every absolute link: `FIGA_PUBLIC_BASE_URL`, which `serve` fills
        with its own address when empty (`chosen_for_serve`); an app built without `serve`
        (tests) names `make run`'s address."""
        return self.public_base_url or listening_url("127.0.0.1", 8000)

    def chosen_for_serve(self, host: str, port: int) -> dict[str, str]:
        """Values for the settings left empty that every process of one `serve` must share,
        chosen once (by the parent, which hands them to the processes it starts): one
        random secret key, as processes with a key each would refuse the others' forms;
        the address `serve` listens on as the public base URL. Field name → value."""
        chosen = {}
        if not self.secret_key:
            chosen["secret_key"] = secrets.token_urlsafe(32)
        if not self.public_base_url:
            chosen["public_base_url"] = listening_url(host, port)
        return chosen

    @property
    def uses_kafka(self) -> bool:
        return bool(self.kafka_bootstrap_servers)

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_image_folder(self) -> bool:
        """A folder of this machine (a path or file://), not an object store."""
        protocol = self.image_store_url.split("://", 1)[0] if "://" in self.image_store_url else ""
        return protocol in ("", "file")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, so the single-process mode can create its folder."""
        if not self.uses_sqlite or ":memory:" in self.database_url:
            return None
        return Path(self.database_url.split(":///", 1)[1])

    def refuse_unsafe(self, command: Command, *, server_processes: int = 1) -> None:
        """Refuse to start `command` with settings that are each valid but together
        would fail later, quietly and elsewhere; the message says the way out."""
        if command == "migrate":
            return
        if command == "worker" and not self.uses_kafka:
            raise SettingsError(
                f"the worker needs {variable('kafka_bootstrap_servers')}; without it"
                " `figachechnaya serve` draws the pictures itself"
            )
        if command == "serve" and server_processes > 1:
            self._refuse_what_server_processes_cannot_share(server_processes)
        if self.uses_kafka:
            self._refuse_what_workers_cannot_share()

    def _refuse_what_server_processes_cannot_share(self, processes: int) -> None:
        if not self.secret_key:
            raise SettingsError(
                f"{variable('secret_key')} must be set to run {processes} server"
                " processes: each would sign the form's CSRF tokens with its own random key"
                " and refuse the forms the others sent"
            )
        if self.metrics_port:
            raise SettingsError(
                f"{variable('metrics_port')}={self.metrics_port} serves one process's"
                f" metrics, but --workers {processes} starts {processes} server processes"
                " that would fight for that port (each scrape would see one of them): run"
                f" one process per container and scale by replicas, or set"
                f" {variable('metrics_port')}=0"
            )

    def _refuse_what_workers_cannot_share(self) -> None:
        """With Kafka, pictures are drawn by `figachechnaya worker` processes, which may
        run on other machines: the database and the pictures must be reachable there."""
        kafka = variable("kafka_bootstrap_servers")
        if self.uses_sqlite:
            raise SettingsError(
                f"{variable('database_url')} is a SQLite file, but with {kafka} set the"
                " worker processes record the pictures in the database: use PostgreSQL"
                f" (postgresql+asyncpg://…), or unset {kafka} to draw in the app's process"
            )
        if self.uses_image_folder and not self.image_public_base_url:
            raise SettingsError(
                f"{variable('image_store_url')}={self.image_store_url} is a folder of this"
                f" machine, but with {kafka} set the worker processes store the pictures:"
                f" use an s3:// store, set {variable('image_public_base_url')} to where the"
                f" workers' folder is served, or unset {kafka} to draw in the app's process"
            )


class _Variables(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of
    `os.environ`, so `from_env` reads a test's variables exactly as the process's."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The one hook the library's own sources (.env files) override to read elsewhere.
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _explain(error: ErrorDetails) -> str:
    """One validation error as the operator set it: the variable, the value, the rule."""
    if not error["loc"]:  # a rule over several fields: its message names them
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return f"{variable(str(error['loc'][0]))}={error['input']!r}: {error['msg']}"
