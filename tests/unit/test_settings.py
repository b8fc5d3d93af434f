"""Settings: read once from `FIGA_*` variables, with defaults that run without any."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from app.settings import Settings, SettingsError

# One raw value per variable, and what it must become.
SAMPLES: dict[str, tuple[str, object]] = {
    "database_url": ("postgresql+asyncpg://figa@db/figa", "postgresql+asyncpg://figa@db/figa"),
    "kafka_bootstrap_servers": ("k1:9092,k2:9092", "k1:9092,k2:9092"),
    "kafka_topic": ("images.v2", "images.v2"),
    "kafka_group_id": ("painters", "painters"),
    "kafka_idempotence": ("false", False),
    "kafka_topic_partitions": ("3", 3),
    "kafka_security_protocol": ("SASL_SSL", "SASL_SSL"),
    "kafka_sasl_mechanism": ("SCRAM-SHA-512", "SCRAM-SHA-512"),
    "kafka_sasl_username": ("figa", "figa"),
    "kafka_sasl_password": ("secret", "secret"),
    "image_store_url": ("s3://pictures/figa", "s3://pictures/figa"),
    "s3_endpoint_url": ("http://minio:9000", "http://minio:9000"),
    "image_public_base_url": ("https://cdn.example/figa", "https://cdn.example/figa"),
    "schemes_file": ("/etc/figa/schemes.toml", "/etc/figa/schemes.toml"),
    "max_phrase_length": ("80", 80),
    "poll_seconds": ("5", 5.0),
    "live_refresh_seconds": ("0.25", 0.25),
    "image_retry_seconds": ("30.5", 30.5),
    "image_max_attempts": ("7", 7),
    "db_timeout_seconds": ("1.5", 1.5),
    "log_format": ("json", "json"),
    "log_level": ("DEBUG", "DEBUG"),
    "worker_metrics_port": ("0", 0),
    "worker_metrics_host": ("10.0.0.7", "10.0.0.7"),
    "rate_limit_per_minute": ("60", 60),
    "kafka_session_timeout_ms": ("6000", 6000),
    "kafka_heartbeat_interval_ms": ("500", 500),
    "kafka_ssl_cafile": ("/etc/ssl/yandex-ca.pem", "/etc/ssl/yandex-ca.pem"),
    "secret_key": ("s3cr3t", "s3cr3t"),
    "forwarded_allow_ips": ("10.0.0.0/8", "10.0.0.0/8"),
}


def variable(field_name: str) -> str:
    return "FIGA_" + field_name.upper()


# Defaults


def test_with_no_variables_every_setting_has_its_default() -> None:
    assert Settings.from_env({}) == Settings()


def test_the_default_database_is_a_sqlite_file_under_var() -> None:
    settings = Settings.from_env({})
    assert settings.uses_sqlite
    assert settings.sqlite_path == Path("var/figachechnaya.sqlite3")


def test_the_default_is_the_in_process_queue_on_the_images_topic() -> None:
    settings = Settings.from_env({})
    assert not settings.uses_kafka
    assert settings.kafka_topic == "figachechnaya.images"


def test_the_default_phrase_limit_is_200_and_the_page_polls_every_2_seconds() -> None:
    settings = Settings.from_env({})
    assert (settings.max_phrase_length, settings.poll_seconds) == (200, 2.0)


def test_production_defaults_keep_the_idempotent_producer_on() -> None:
    assert Settings.from_env({}).kafka_idempotence is True


# Reading variables


def test_settings_round_trip_through_the_environment() -> None:
    settings = Settings.from_env({variable(name): raw for name, (raw, _) in SAMPLES.items()})
    assert Settings.from_env(settings.to_env()) == settings


def test_every_setting_has_a_sample_here() -> None:
    assert {spec.name for spec in fields(Settings)} == set(SAMPLES)


@pytest.mark.parametrize(
    ("field_name", "sample"), SAMPLES.items(), ids=[variable(n) for n in SAMPLES]
)
def test_each_setting_is_read_from_its_figa_variable(
    field_name: str, sample: tuple[str, object]
) -> None:
    raw, expected = sample
    settings = Settings.from_env({variable(field_name): raw})
    assert getattr(settings, field_name) == expected
    assert type(getattr(settings, field_name)) is type(expected)


def test_variables_without_the_figa_prefix_are_ignored() -> None:
    environ = {"DATABASE_URL": "postgresql://elsewhere", "figa_kafka_topic": "lower-case"}
    assert Settings.from_env(environ) == Settings()


def test_the_process_environment_is_read_when_no_mapping_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FIGA_KAFKA_TOPIC", "from-the-environment")
    assert Settings.from_env().kafka_topic == "from-the-environment"


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on", " On "])
def test_true_booleans(raw: str) -> None:
    assert Settings.from_env({"FIGA_KAFKA_IDEMPOTENCE": raw}).kafka_idempotence is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off"])
def test_false_booleans(raw: str) -> None:
    assert Settings.from_env({"FIGA_KAFKA_IDEMPOTENCE": raw}).kafka_idempotence is False


def test_a_boolean_set_but_empty_is_refused_rather_than_read_as_off() -> None:
    with pytest.raises(SettingsError, match="FIGA_KAFKA_IDEMPOTENCE"):
        Settings.from_env({"FIGA_KAFKA_IDEMPOTENCE": ""})


@pytest.mark.parametrize("raw", ["0", "-1", "nan"])
def test_intervals_must_be_positive(raw: str) -> None:
    with pytest.raises(SettingsError, match="FIGA_POLL_SECONDS"):
        Settings.from_env({"FIGA_POLL_SECONDS": raw})


def test_numbers_are_read_without_surrounding_spaces_and_text_exactly() -> None:
    settings = Settings.from_env(
        {
            "FIGA_MAX_PHRASE_LENGTH": " 120 ",
            "FIGA_POLL_SECONDS": " 0.5",
            "FIGA_KAFKA_SASL_PASSWORD": " secret with spaces ",
        }
    )
    assert (settings.max_phrase_length, settings.poll_seconds) == (120, 0.5)
    assert settings.kafka_sasl_password == " secret with spaces "


# Bad values name the variable


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("FIGA_MAX_PHRASE_LENGTH", "many"),
        ("FIGA_MAX_PHRASE_LENGTH", ""),
        ("FIGA_KAFKA_TOPIC_PARTITIONS", "1.5"),
        ("FIGA_POLL_SECONDS", "soon"),
        ("FIGA_KAFKA_IDEMPOTENCE", "maybe"),
        ("FIGA_LOG_FORMAT", "xml"),
        ("FIGA_MAX_PHRASE_LENGTH", "0"),
        ("FIGA_MAX_PHRASE_LENGTH", "-5"),
    ],
    ids=lambda value: value or "empty",
)
def test_an_unusable_value_is_refused_naming_its_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: raw})


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    undocumented = [
        variable(spec.name) for spec in fields(Settings) if variable(spec.name) not in readme
    ]
    assert undocumented == []
