"""Settings: read once from `FIGA_*` variables, with defaults that run without any."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.settings import Command, Settings, SettingsError, variable
from tests.distributed import settings_env

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
    "s3_timeout_seconds": ("4.5", 4.5),
    "image_public_base_url": ("https://cdn.example/figa", "https://cdn.example/figa"),
    "schemes_file": ("/etc/figa/schemes.toml", "/etc/figa/schemes.toml"),
    "max_phrase_length": ("80", 80),
    "poll_seconds": ("5", 5.0),
    "live_refresh_seconds": ("0.25", 0.25),
    "image_retry_seconds": ("30.5", 30.5),
    "outbox_handoff_grace_seconds": ("12", 12.0),
    "image_max_attempts": ("7", 7),
    "db_timeout_seconds": ("1.5", 1.5),
    "header_timeout_seconds": ("4", 4.0),
    "log_format": ("json", "json"),
    "log_level": ("DEBUG", "DEBUG"),
    "metrics_port": ("9200", 9200),
    "metrics_host": ("0.0.0.0", "0.0.0.0"),  # noqa: S104 - a value read, nothing bound
    "worker_metrics_port": ("0", 0),
    "worker_metrics_host": ("10.0.0.7", "10.0.0.7"),
    "worker_stall_seconds": ("2.5", 2.5),
    "db_pool_size": ("4", 4),
    "db_pool_overflow": ("0", 0),
    "rate_limit_per_minute": ("60", 60),
    "kafka_session_timeout_ms": ("6000", 6000),
    "kafka_heartbeat_interval_ms": ("500", 500),
    "kafka_ssl_cafile": ("/etc/ssl/yandex-ca.pem", "/etc/ssl/yandex-ca.pem"),
    "secret_key": ("s3cr3t", "s3cr3t"),
    "forwarded_allow_ips": ("10.0.0.0/8", "10.0.0.0/8"),
    "public_base_url": ("https://figachechnaya.ru/", "https://figachechnaya.ru"),
}


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


def test_the_operations_ports_default_to_9101_for_the_app_and_9100_for_the_worker() -> None:
    settings = Settings.from_env({})
    assert (settings.metrics_host, settings.metrics_port) == ("127.0.0.1", 9101)
    assert (settings.worker_metrics_host, settings.worker_metrics_port) == ("127.0.0.1", 9100)
    assert settings.worker_stall_seconds == 60.0


def test_each_process_pools_10_connections_and_10_more_under_load_by_default() -> None:
    settings = Settings.from_env({})
    assert (settings.db_pool_size, settings.db_pool_overflow) == (10, 10)


# Reading variables


def test_settings_round_trip_through_the_environment() -> None:
    settings = Settings.from_env({variable(name): raw for name, (raw, _) in SAMPLES.items()})
    assert Settings.from_env(settings_env(settings)) == settings


def test_every_setting_has_a_sample_here() -> None:
    assert set(Settings.model_fields) == set(SAMPLES)


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


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf"])
def test_intervals_must_be_positive_and_finite(raw: str) -> None:
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


def test_the_log_level_is_read_in_any_case() -> None:
    assert Settings.from_env({"FIGA_LOG_LEVEL": "warning"}).log_level == "WARNING"


def test_settings_given_in_code_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIGA_KAFKA_TOPIC", "from-the-environment")
    assert Settings(database_url="sqlite+aiosqlite:///x.sqlite3").kafka_topic == (
        "figachechnaya.images"
    )


def test_settings_cannot_change_once_made() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.kafka_topic = "elsewhere"  # type: ignore[misc]
    assert settings.model_copy(update={"kafka_topic": "elsewhere"}).kafka_topic == "elsewhere"


def test_secrets_are_not_shown_when_settings_are_printed() -> None:
    settings = Settings(secret_key="s3cr3t", kafka_sasl_password="hunter2")
    assert "s3cr3t" not in repr(settings)
    assert "hunter2" not in repr(settings)


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
        ("FIGA_KAFKA_TOPIC", ""),
        ("FIGA_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("FIGA_KAFKA_SASL_MECHANISM", "GSSAPI"),  # needs more than a user and a password
        ("FIGA_LOG_LEVEL", "LOUD"),
        ("FIGA_WORKER_METRICS_PORT", "70000"),
        ("FIGA_METRICS_PORT", "-1"),
        ("FIGA_WORKER_STALL_SECONDS", "0"),
        ("FIGA_DB_POOL_SIZE", "0"),
        ("FIGA_DB_POOL_OVERFLOW", "-1"),
        ("FIGA_RATE_LIMIT_PER_MINUTE", "-1"),
    ],
    ids=lambda value: value or "empty",
)
def test_an_unusable_value_is_refused_naming_its_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: raw})


def test_every_unusable_value_is_named_in_one_message() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"FIGA_POLL_SECONDS": "soon", "FIGA_LOG_FORMAT": "xml"})
    assert str(refused.value) == (
        "FIGA_POLL_SECONDS='soon': Input should be a valid number, unable to parse string as a"
        " number; FIGA_LOG_FORMAT='xml': Input should be 'console' or 'json'"
    )


def test_a_heartbeat_no_shorter_than_the_session_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"FIGA_KAFKA_HEARTBEAT_INTERVAL_MS .*shorter than"):
        Settings.from_env(
            {"FIGA_KAFKA_SESSION_TIMEOUT_MS": "6000", "FIGA_KAFKA_HEARTBEAT_INTERVAL_MS": "6000"}
        )


def test_the_cli_prints_an_unusable_value_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FIGA_POLL_SECONDS", "0")
    assert main(["migrate"]) == 2
    assert capsys.readouterr().err == (
        "figachechnaya: FIGA_POLL_SECONDS='0': Input should be greater than 0\n"
    )


# Unsafe combinations are refused at start-up

DISTRIBUTED = Settings(
    database_url="postgresql+asyncpg://figa@db/figa",
    kafka_bootstrap_servers="kafka:9092",
    image_store_url="s3://pictures/figa",
)


@pytest.mark.parametrize("command", ["serve", "worker", "migrate"])
def test_the_distributed_settings_start_every_command(command: Command) -> None:
    DISTRIBUTED.refuse_unsafe(command)


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_the_single_process_defaults_start_the_app_and_the_migration(command: Command) -> None:
    Settings().refuse_unsafe(command)


def test_the_worker_without_kafka_is_refused() -> None:
    with pytest.raises(SettingsError, match="the worker needs FIGA_KAFKA_BOOTSTRAP_SERVERS"):
        Settings().refuse_unsafe("worker")


def test_more_than_one_server_process_needs_a_shared_secret_key() -> None:
    with pytest.raises(SettingsError, match="FIGA_SECRET_KEY must be set to run 4 server"):
        Settings(metrics_port=0).refuse_unsafe("serve", server_processes=4)
    Settings(secret_key="shared", metrics_port=0).refuse_unsafe("serve", server_processes=4)
    Settings().refuse_unsafe("serve", server_processes=1)


def test_more_than_one_server_process_with_a_metrics_port_is_refused() -> None:
    """The processes would fight for the one port, and a scrape would see one of them."""
    with pytest.raises(SettingsError, match=r"FIGA_METRICS_PORT=9101 .* --workers 2 .*replicas"):
        Settings(secret_key="shared").refuse_unsafe("serve", server_processes=2)
    Settings(secret_key="shared", metrics_port=0).refuse_unsafe("serve", server_processes=2)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_kafka_with_a_sqlite_database_is_refused(command: Command) -> None:
    settings = DISTRIBUTED.model_copy(update={"database_url": Settings().database_url})
    with pytest.raises(SettingsError, match="FIGA_DATABASE_URL is a SQLite file"):
        settings.refuse_unsafe(command)


@pytest.mark.parametrize("folder", ["var/images", "/srv/pictures", "file:///srv/pictures"])
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_kafka_with_a_picture_folder_is_refused(command: Command, folder: str) -> None:
    settings = DISTRIBUTED.model_copy(update={"image_store_url": folder})
    with pytest.raises(SettingsError, match=f"FIGA_IMAGE_STORE_URL={folder} is a folder"):
        settings.refuse_unsafe(command)


def test_kafka_with_a_picture_folder_served_elsewhere_starts() -> None:
    settings = DISTRIBUTED.model_copy(
        update={"image_store_url": "/srv/pictures", "image_public_base_url": "https://cdn/p"}
    )
    settings.refuse_unsafe("worker")
    settings.refuse_unsafe("serve")


@pytest.mark.parametrize(
    ("argv", "variables", "named"),
    [
        (["serve"], {"FIGA_FORWARDED_ALLOW_IPS": "*"}, "FIGA_FORWARDED_ALLOW_IPS"),
        (["serve", "--workers", "2"], {"FIGA_SECRET_KEY": "shared"}, "FIGA_METRICS_PORT"),
        (["worker"], {}, "FIGA_KAFKA_BOOTSTRAP_SERVERS"),
        (["serve"], {"FIGA_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}, "FIGA_DATABASE_URL"),
    ],
    ids=["serve-trusting-every-proxy", "serve-workers-2-metrics", "worker", "serve-kafka-sqlite"],
)
def test_the_cli_refuses_before_starting_anything_and_exits_2(
    argv: list[str],
    variables: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    refusal = capsys.readouterr().err
    assert refusal.startswith("figachechnaya: "), refusal
    assert named in refusal
    assert refusal.count("\n") == 1  # one line, no traceback


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    undocumented = [
        variable(name) for name in Settings.model_fields if variable(name) not in readme
    ]
    assert undocumented == []
