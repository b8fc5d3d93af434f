"""The distributed mode for tests: settings and process environments on the real services.

One place that knows how PostgreSQL, the Kafka broker and the S3 server of
`tests/services` become `Settings` for the app and environment variables for a
`figachechnaya` subprocess, so every distributed test starts the same stack.
"""

from __future__ import annotations

import os
from typing import Any

from app.settings import Settings, variable
from tests.services.kafka import KafkaService
from tests.services.s3 import S3Service


def distributed_settings(
    *,
    database_url: str,
    kafka: KafkaService,
    topic: str,
    s3: S3Service,
    bucket: str,
    **overrides: Any,
) -> Settings:
    fields: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka.bootstrap_servers,
        "kafka_topic": topic,
        "kafka_group_id": f"{topic}-workers",  # no member of an earlier test's group
        "kafka_idempotence": kafka.supports_idempotence,
        "kafka_session_timeout_ms": kafka.group_timeouts["session_timeout_ms"],
        "kafka_heartbeat_interval_ms": kafka.group_timeouts["heartbeat_interval_ms"],
        "image_store_url": f"s3://{bucket}/pictures",
        "s3_endpoint_url": s3.endpoint_url,
        "live_refresh_seconds": 0.2,
        "metrics_port": 0,  # no fixed port in tests: one that scrapes gives a free one
    }
    return Settings(**(fields | overrides))


def settings_env(settings: Settings) -> dict[str, str]:
    """The `FIGA_*` variables that give another process exactly these settings."""
    return {
        variable(name): str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in settings.model_dump().items()
    }


def process_env(settings: Settings, s3: S3Service, **overrides: str) -> dict[str, str]:
    """The environment of an app or worker process with these settings and S3 credentials."""
    return {
        **os.environ,
        **settings_env(settings),
        "AWS_ACCESS_KEY_ID": str(s3.key),
        "AWS_SECRET_ACCESS_KEY": str(s3.secret),
        "FIGA_METRICS_PORT": "0",
        "FIGA_WORKER_METRICS_PORT": "0",
        **overrides,
    }
