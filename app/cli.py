"""The `figachechnaya` command: serve | worker | migrate.

Reads settings once and refuses, before anything starts, settings that are
unusable or unsafe for the command; either is one clear line and exit status
2 instead of a traceback. For `serve` it first fills the settings every server
process must share but the operator left empty (`Settings.chosen_for_serve`), once,
so that `--workers N` processes agree on them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from types import FrameType
from typing import Any

from app.domain.schemes import CatalogueError
from app.logs import configure_logging
from app.settings import Settings, SettingsError, variable
from app.version import service_version

GRACE_SECONDS = 20  # SIGTERM: in-flight requests get this long (Kubernetes waits 40 s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="figachechnaya", description=__doc__)
    parser.add_argument("--version", action="version", version=service_version())
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="the web app (and the in-process worker without Kafka)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes")
    commands.add_parser("worker", help="the image worker (needs FIGA_KAFKA_BOOTSTRAP_SERVERS)")
    commands.add_parser("migrate", help="apply database migrations")
    parser.set_defaults(workers=1)  # one process for the commands without --workers
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        chosen = settings.chosen_for_serve(args.host, args.port) if args.command == "serve" else {}
        settings = settings.model_copy(update=chosen)
        settings.refuse_unsafe(args.command, server_processes=args.workers)
        configure_logging(settings)
        if chosen:  # only `serve` chooses, and has a --host
            _say_what_was_chosen(chosen, args.host)
        return _run(args, settings, {variable(name): value for name, value in chosen.items()})
    except (SettingsError, CatalogueError) as error:
        print(f"figachechnaya: {error}", file=sys.stderr)
        return 2


def _say_what_was_chosen(chosen: dict[str, str], host: str) -> None:
    log = logging.getLogger(__name__)
    if "secret_key" in chosen:
        log.warning(
            "%s is unset: the form's CSRF tokens are signed with a random key of this run;"
            " forms opened before a restart are refused once after it (set it to keep them)",
            variable("secret_key"),
        )
    if "public_base_url" in chosen and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "%s is unset: absolute links name %s, this machine; set it to the address clients use",
            variable("public_base_url"),
            chosen["public_base_url"],
        )


def _run(args: argparse.Namespace, settings: Settings, chosen: dict[str, str]) -> int:
    if args.command == "migrate":
        from app.store.migrate import upgrade

        upgrade(settings)
        logging.getLogger(__name__).info("database schema is up to date")
        return 0
    if args.command == "worker":
        import uvloop

        from app.process_tuning import tune_garbage_collector
        from workers.consumer import run_worker

        tune_garbage_collector()  # after the imports: botocore's and aiokafka's data frozen
        # The loop the app runs on too (uvicorn's): ~15% less CPU per upload than asyncio's
        # own, measured interleaved on the bench machine (180–205 vs 220–230 µs a PUT).
        return uvloop.run(run_worker(settings))
    import uvicorn

    from app import header_timeout
    from app.asgi import create_app
    from app.graceful_stop import DrainingServer
    from app.process_tuning import tune_garbage_collector

    # uvicorn re-raises SIGTERM once its graceful shutdown is over (>= 0.29); with the
    # default handler that ends the process with status 143 instead of 0.
    signal.signal(signal.SIGTERM, _exit_after_graceful_shutdown)
    server: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "timeout_graceful_shutdown": GRACE_SECONDS,
        "log_config": None,  # app.logs configured logging
        "access_log": False,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "http": header_timeout.protocol(settings.header_timeout_seconds),
    }
    if args.workers > 1:
        from app.catalogue import load_catalogue

        load_catalogue(settings.schemes_file)  # fail here with one line, not in every worker
        if settings.uses_sqlite:
            from app.store.migrate import upgrade

            # Once, before the processes start: each one's lifespan migrating the same new
            # file at once raced ("table figalization already exists") and one died. At head
            # already, their own upgrade only reads the version.
            upgrade(settings)
        # The processes uvicorn spawns build their settings from this environment (app.main):
        # the values chosen here are theirs too, one secret key for all of them.
        os.environ.update(chosen)
        uvicorn.run("app.main:app", workers=args.workers, **server)
    else:
        config = uvicorn.Config(create_app(settings), **server)
        config.load()  # imports the event loop and protocol modules uvicorn will serve with
        tune_garbage_collector()  # after the app and the server are built: frozen too
        uvicorn_server = DrainingServer(config)  # a stop resets no accepted connection
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn_server.run()
        if not uvicorn_server.started:  # the port was taken or the app's start-up failed (logged)
            return 3  # uvicorn's own status for a failed start-up
    return 0


def _exit_after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
