"""The operator's /metrics (Prometheus' text format) on its own address: what it says follows what
the database holds, and it is not on the public callback server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.world import ANNA, World, anna_on_facebook, close_world, make_world


@pytest.fixture
async def watched(database_url: str) -> AsyncIterator[World]:
    w = await make_world(database_url, metrics_port=0)
    try:
        yield w
    finally:
        await close_world(w)


async def _scrape(world: World) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    port = world.bot.metrics_port
    assert port is not None and port != world.bot.http_port
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


async def test_metrics_follow_the_connections_and_the_outbox(watched: World) -> None:
    world = watched
    before = await _scrape(world)
    assert before[("connectbot_outbox_waiting", ())] == 0
    assert before[("connectbot_outbox_oldest_age_seconds", ())] == 0
    assert not any(name == "connectbot_connections" for name, _ in before)

    token = await world.invite("@anna.bakes")
    await world.through_checks(ANNA, token)
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert page.status_code == 200
    await world.telegram.wait_for(ANNA.id, "connected")

    after = await _scrape(world)
    assert after[("connectbot_connections", (("state", "active"),))] == 1
    assert after[("connectbot_callbacks_total", (("outcome", "connected"),))] == 1
    assert after[("connectbot_callback_seconds_count", ())] == 1
    assert 0 < after[("connectbot_callback_seconds_sum", ())] < 10
    if after[("connectbot_outbox_waiting", ())] > 0:  # the card's edits, the buttons coming off
        assert after[("connectbot_outbox_oldest_age_seconds", ())] > 0
    # Once everything is delivered, nothing waits.
    async with asyncio.timeout(15):
        while True:
            drained = await _scrape(world)
            if drained[("connectbot_outbox_waiting", ())] == 0:
                break
            await asyncio.sleep(0.2)
    assert drained[("connectbot_outbox_oldest_age_seconds", ())] == 0


async def test_metrics_are_not_on_the_public_server(watched: World) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        public = await client.get(f"{watched.settings.public_url}/metrics")
    assert public.status_code == 404


async def test_metrics_are_off_by_default(world: World) -> None:
    assert world.settings.metrics_port is None and world.bot.metrics_port is None
