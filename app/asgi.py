"""The application factory: the one place where adapters are chosen and wired.

`create_app(settings)` reads nothing from the environment; `settings.Settings`
did that. `wire` names every adapter; background loops (outbox relay,
reconciler, live feed refresh and, in the single-process mode, the image
worker) and the operations port (metrics) live in the app's lifespan, which
also tells readiness when serving starts and when draining begins. Process-wide tuning (the garbage
collector) is the server command's business, not the app's.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import font_source_sans_pro
import js_lib_htmx
from litestar import Litestar, Router
from litestar.datastructures import CacheControlHeader, State
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from app.catalogue import load_catalogue
from app.domain.ids import UlidFactory
from app.figalizations import Figalizer
from app.images import FsspecImageStore
from app.jobs.inprocess import InProcessQueue
from app.jobs.kafka import KafkaQueue
from app.jobs.queue import JobQueue
from app.jobs.relay import OutboxRelay, Reconciler
from app.live import LiveFeed
from app.operations_port import OperationsPort
from app.runtime import Health, Runtime
from app.settings import Settings
from app.store.database import Database
from app.store.history import SqlHistory
from app.store.migrate import upgrade_async
from app.store.outbox import SqlOutbox
from app.store.writes import FigalizationWriter
from app.web import envelope, paths
from app.web.api import ApiV2Controller, create_figalization, document_create_route
from app.web.assets import hashed_asset
from app.web.compat import CompatController
from app.web.compression import compression
from app.web.direct import direct, plain
from app.web.errors import exception_handlers
from app.web.fragments import FragmentController, hint_poll, total_poll
from app.web.ops import OpsController, ReadinessProbe
from app.web.pages import PageController, figalizer_page
from app.web.security import MAX_BODY_BYTES, csrf, rate_limit_config
from app.web.templating import configure_jinja

PACKAGE = Path(__file__).parent
SWAGGER = "/vendor/swagger"


def templates_directory() -> Path:
    """The top-level `templates/` in a checkout, or its copy inside the installed wheel."""
    checkout = PACKAGE.parent / "templates"
    return checkout if checkout.is_dir() else PACKAGE / "_templates"


@dataclass(frozen=True, slots=True)
class Process:
    """Everything one app process runs: the handlers' runtime and what the lifespan
    starts and stops around them."""

    runtime: Runtime
    database: Database
    writer: FigalizationWriter
    outbox: SqlOutbox
    queue: JobQueue
    relay: OutboxRelay
    reconciler: Reconciler

    def background_loops(self) -> list[Coroutine[Any, Any, None]]:
        loops = [self.relay.run(), self.reconciler.run(), self.runtime.live.run()]
        if isinstance(self.queue, InProcessQueue):
            loops.append(self._in_process_worker(self.queue))
        return loops

    async def _in_process_worker(self, queue: InProcessQueue) -> None:
        """The single-process mode draws pictures itself; only then is Pillow imported."""
        from app.store.pictures import picture_records
        from workers.inprocess import serve_in_process
        from workers.pipeline import RetryPolicy

        policy = RetryPolicy(max_attempts=self.runtime.settings.image_max_attempts)
        pictures = picture_records(self.database)  # the worker's own choice, as `worker` makes it
        try:
            await serve_in_process(queue, self.runtime.images, pictures, policy)
        finally:
            await pictures.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # hand over what is ready before stopping
            await asyncio.wait_for(self.relay.drain(), timeout=5)
        await self.queue.close()
        await self.writer.close()
        await self.outbox.close()
        await self.database.close()
        await self.runtime.images.close()


def wire(settings: Settings) -> Process:
    """Choose and connect the adapters: the only place that names them."""
    catalogue = load_catalogue(settings.schemes_file)  # a bad catalogue stops start-up here
    database = Database.from_settings(settings)
    history = SqlHistory(database)
    outbox = SqlOutbox(database)
    queue: JobQueue = KafkaQueue(settings) if settings.uses_kafka else InProcessQueue()
    relay = OutboxRelay(outbox, queue, handoff_grace_seconds=settings.outbox_handoff_grace_seconds)
    writer = FigalizationWriter.for_database(database, committed=relay.handoff)
    live = LiveFeed(history, refresh_seconds=settings.live_refresh_seconds)
    images = FsspecImageStore(settings)
    figalizer = Figalizer(
        catalogue,
        history,
        writer,
        max_phrase_length=settings.max_phrase_length,
        new_id=UlidFactory(
            clock_ms=lambda: time.time_ns() // 1_000_000,
            random80=lambda: int.from_bytes(os.urandom(10)),
        ),
        on_stored=live.record,
    )
    reconciler = Reconciler(
        outbox, relay, figalizer.image_job, retry_after_seconds=settings.image_retry_seconds
    )
    health = Health(
        database=database.ping,
        queue=queue.ping,
        images=images.ping,
        backlog=outbox.backlog,
        oldest_job_age=relay.oldest_job.age_seconds,
    )
    runtime = Runtime(settings, figalizer, live, images, health)
    return Process(runtime, database, writer, outbox, queue, relay, reconciler)


@asynccontextmanager
async def operations_port(settings: Settings) -> AsyncIterator[None]:
    """The app's metrics on `FIGA_METRICS_PORT` for as long as the app runs: first up (a
    port in use stops start-up at once), last down (the final scrape sees the drain)."""
    if not settings.metrics_port:
        yield
        return
    port = OperationsPort(settings.metrics_host, settings.metrics_port)
    port.start()
    try:
        yield
    finally:
        await asyncio.to_thread(port.stop)


def create_app(settings: Settings) -> Litestar:
    process = wire(settings)
    runtime = process.runtime
    probe = ReadinessProbe(runtime.health)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        async with operations_port(settings):
            if settings.uses_sqlite:  # the single-process mode migrates itself
                await upgrade_async(settings)
            await process.queue.start()
            await process.writer.start()
            await runtime.live.refresh()
            tasks = [asyncio.create_task(loop) for loop in process.background_loops()]
            probe.start_serving()
            try:
                yield
            finally:
                probe.stop_serving()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await process.close()

    page_csrf = csrf(settings)  # one instance, one secret: the router's and `direct`'s
    app = Litestar(
        route_handlers=[
            # CSRF protects the form, so only the page's routes pay for it.
            Router(
                path="/",
                route_handlers=[figalizer_page, PageController],
                middleware=[page_csrf],
            ),
            FragmentController,
            hint_poll,
            total_poll,
            create_figalization,
            ApiV2Controller,
            CompatController,
            OpsController,
            hashed_asset,
            *static_files(),
        ],
        dependencies={
            "runtime": Provide(lambda: runtime, use_cache=True, sync_to_thread=False),
            "probe": Provide(lambda: probe, use_cache=True, sync_to_thread=False),
        },
        lifespan=[lifespan],
        state=State({"runtime": runtime}),  # for the plain-ASGI poll handlers
        logging_config=None,  # app.logs configured the root logger
        middleware=[limits.middleware] if (limits := rate_limit_config(settings)) else [],
        exception_handlers=exception_handlers(),
        request_max_body_size=MAX_BODY_BYTES,
        template_config=TemplateConfig(
            directory=templates_directory(),
            engine=JinjaTemplateEngine,
            engine_callback=configure_jinja,
        ),
        openapi_config=OpenAPIConfig(
            title="Фигачечная API",
            version="2.0.0",
            description="Figalization of Russian words: the v2 JSON API and the v1 compat API.",
            path=paths.API,
            render_plugins=[
                SwaggerRenderPlugin(
                    path="/docs",
                    js_url=f"{SWAGGER}/swagger-ui-bundle.js",
                    css_url=f"{SWAGGER}/swagger-ui.css",
                    standalone_preset_js_url=f"{SWAGGER}/swagger-ui-standalone-preset.js",
                    favicon='<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">',
                )
            ],
        ),
    )
    document_create_route(app)  # the ASGI create route's operation, which Litestar cannot derive
    # Around the router too: every answer gets its headers. Inside it, compression (it sees
    # the status), then the hottest plain-ASGI routes, reached without the router — unless
    # the rate limit is on: its middleware must see the create route's POSTs.
    hottest = {
        **plain(create_figalization, hint_poll, total_poll),
        **{path: page_csrf(figalizer_page.fn) for path in figalizer_page.paths},
    }
    routed = direct(app.asgi_handler, {} if settings.rate_limit_per_minute else hottest)
    app.asgi_handler = compression(routed)
    envelope.install(app, settings)
    return app


def swagger_ui_assets() -> Path:
    """Swagger UI 5 (it renders OpenAPI 3.1) as shipped in the `swagger-ui-py` wheel;
    found without importing the package, whose adapters for other frameworks we skip."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def static_files() -> list[Any]:
    """Our CSS, and the third-party assets straight from their packages (no CDN), under the
    names of old releases with a day's cache; the pages link the hashed ones (`assets`)."""
    sources = {
        "/assets": PACKAGE / "web" / "static",
        "/vendor/htmx": Path(js_lib_htmx.__file__).parent / "static" / "htmx",
        "/vendor/fonts": Path(font_source_sans_pro.font_directory),
        "/vendor/swagger": swagger_ui_assets(),
    }
    return [
        create_static_files_router(
            path=path,
            directories=[directory],
            name=f"static{path.replace('/', '-')}",
            include_in_schema=False,
            cache_control=CacheControlHeader(max_age=86400),
        )
        for path, directory in sources.items()
    ]
