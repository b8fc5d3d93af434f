"""Degradation survives Kubernetes (issue 11): readiness is "can serve", not "every dependency up".

With the broker AND the object store stopped (the real services), the app's
readiness probe — the path the Deployment's `readinessProbe` names — answers
200, with both dependencies `ok=false` in its body, and the page still
figalizes; an app started during the outage becomes ready too (a pod
rescheduled then must join the Service). If readiness followed the
dependencies, every replica would leave the Service at once and the ingress
would answer 503 for the whole site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import Settings
from tests.conftest import AppClient, figalize, post_form, wait_until
from tests.services.kafka import KafkaService
from tests.services.s3 import S3Service

APP_DEPLOYMENT = Path(__file__).resolve().parents[2] / "k8s" / "base" / "app-deployment.yaml"


def readiness_path() -> str:
    """The path the app container's readiness probe asks, as the manifest says."""
    deployment = yaml.safe_load(APP_DEPLOYMENT.read_text(encoding="utf-8"))
    (app,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "app"]
    return str(app["readinessProbe"]["httpGet"]["path"])


async def assert_ready_with_queue_and_images_down(client: Any) -> None:
    """Every answer is 200 and ready; within the states' 1 s cache the body says both down."""

    async def ready_and_reporting_both_down() -> bool:
        probe = await client.get(readiness_path())
        assert probe.status_code == 200, probe.text
        body = probe.json()
        assert body["ready"] is True
        # The database stays up; on a loaded machine one check may miss its 1 s bound.
        return body["database"]["ok"] and not body["queue"]["ok"] and not body["images"]["ok"]

    await wait_until(ready_and_reporting_both_down, within=10, every=0.2)


async def test_with_the_broker_and_the_store_down_the_app_stays_ready_and_figalizes(
    stack_settings: Settings,
    kafka_service: KafkaService,
    s3_service: S3Service,
    app_client: AppClient,
) -> None:
    if not (kafka_service.controllable and s3_service.controllable):
        pytest.skip("external servers cannot be stopped by the test")
    running = await app_client(stack_settings)

    async def the_queue_is_up() -> bool:  # the producer connects on first use
        return bool((await running.get(readiness_path())).json()["queue"]["ok"])

    await wait_until(the_queue_is_up, within=10)
    kafka_service.stop()
    s3_service.stop()
    try:
        await assert_ready_with_queue_and_images_down(running)
        started_during_the_outage = await app_client(stack_settings)
        await assert_ready_with_queue_and_images_down(started_during_the_outage)

        for client in (running, started_during_the_outage):
            page = await client.get("/")
            assert page.status_code == 200
            fragment = await post_form(client, {"phrase": "Велосипед"}, htmx=True)
            assert fragment.status_code == 200
            assert "Фигосипед" in fragment.text
            made = await figalize(client, "Машина")  # stored: its picture waits in the outbox
            assert made["result"] == "Фигина"
            assert made["image"]["status"] == "pending"

        async def the_body_reports_the_jobs_waiting_for_the_broker() -> bool:
            backlog = (await running.get(readiness_path())).json()["outbox_backlog"]
            return backlog is not None and backlog >= 4  # two per app, in one database

        await wait_until(the_body_reports_the_jobs_waiting_for_the_broker, within=10)
    finally:
        kafka_service.start()
        s3_service.start()
