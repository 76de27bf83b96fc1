"""The callback path under load, on SQLite and PostgreSQL: at most N logins verified at a time,
first come first served; the independent Graph reads of one login at the same time; and the
delivery worker waiting for a chat's slot without polling the outbox."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import OutboxKind, OutboxMessage
from sandbox.facebook import FbPage, FbUser, IgAccount
from sandbox.telegram import TgUser
from tests.world import ANNA, World, anna_on_facebook, close_world, make_world

AT_A_TIME = 2
CALLBACKS = 6
LATENCY = 0.25  # every Graph answer takes this long


def _handle(i: int) -> str:
    return f"creator_{i:02d}"


def _influencer(i: int) -> TgUser:
    return TgUser(id=8100 + i, first_name=f"Creator{i}", language_code="en")


def _on_facebook(i: int) -> FbUser:
    ig = IgAccount(id=f"ig-{i}", username=_handle(i), followers_count=1000 + i)
    return FbUser(
        id=f"fb-{i}", name=f"Creator {i}", pages=[FbPage(f"p-{i}", f"Page {i}", instagram=ig)]
    )


@pytest.fixture
async def gated(database_url: str) -> AsyncIterator[World]:
    w = await make_world(database_url, facebook_max_concurrent_logins=AT_A_TIME)
    try:
        yield w
    finally:
        await close_world(w)


async def _scalar(world: World, query: str) -> object:
    async with world.db.engine.connect() as conn:
        return (await conn.execute(sa.text(query))).scalar_one()


def _graph_calls(world: World, path_end: str) -> list[tuple[dict[str, str], float, float]]:
    """The stand-in's Graph requests whose path ends so: (parameters, arrived, answered)."""
    return [
        (params, *times)
        for (_, path, params), times in zip(
            world.graph.requests, world.graph.request_times, strict=True
        )
        if path.endswith(path_end)
    ]


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = current = 0
    for _, step in edges:  # an end before a start at the same instant
        current += step
        most = max(most, current)
    return most


async def test_logins_are_verified_n_at_a_time_in_arrival_order(gated: World) -> None:
    world = gated
    callbacks: list[str] = []
    for i in range(CALLBACKS):
        user = _influencer(i)
        token = await world.invite(_handle(i))
        await world.through_checks(user, token)
        world.graph.set_person(_on_facebook(i))
        dialog = await world.browser.get(world.login_url(user))
        assert dialog.status_code == 302, dialog.text
        callbacks.append(dialog.headers["location"])
    codes = [parse_qs(urlsplit(url).query)["code"][0] for url in callbacks]
    world.graph.latency = LATENCY

    async with httpx.AsyncClient(timeout=30, cookies=world.browser.cookies) as browser:

        async def arrive(i: int, url: str) -> httpx.Response:
            # One after the other, all before the first is done; far enough apart that a busy
            # machine does not let a later one reach the gate first.
            await asyncio.sleep(0.3 * i)
            return await browser.get(url)

        pages = await asyncio.gather(*(arrive(i, url) for i, url in enumerate(callbacks)))

    assert [p.status_code for p in pages] == [200] * CALLBACKS
    assert all("Connected" in p.text for p in pages)
    for i in range(CALLBACKS):
        await world.telegram.wait_for(_influencer(i).id, "Connected!", timeout=15)
    assert await _scalar(world, "SELECT COUNT(*) FROM connection") == CALLBACKS

    # Each verification, seen at Facebook: from its code exchange to its last read (its one
    # /me/accounts; the follower count comes with it). First come, first served; never more
    # than N. How many are in flight at once depends only on when they begin and end, so the
    # k-th beginning is paired with the k-th end.
    exchanges = [
        (params["code"], arrived)
        for params, arrived, _ in _graph_calls(world, "/oauth/access_token")
        if "code" in params
    ]
    assert [code for code, _ in exchanges] == codes
    ends = sorted(answered for _, _, answered in _graph_calls(world, "/me/accounts"))
    assert len(ends) == CALLBACKS
    spans = list(zip(sorted(began for _, began in exchanges), ends, strict=True))
    assert all(began < ended for began, ended in spans), spans
    assert _most_at_once(spans) == AT_A_TIME, spans


async def test_the_graph_reads_of_one_login_overlap(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    world.graph.latency = LATENCY
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert page.status_code == 200 and "Connected" in page.text

    reads = [
        _graph_calls(world, "/debug_token"),
        _graph_calls(world, "/me/permissions"),
        _graph_calls(world, "/me/accounts"),
    ]
    assert [len(r) for r in reads] == [1, 1, 2]  # Anna's three Pages come two per page
    spans = [(arrived, answered) for (_, arrived, answered), *_ in reads]
    # All three in flight at once: each arrived before any of them was answered.
    assert max(a for a, _ in spans) < min(b for _, b in spans), spans


async def test_a_chat_waiting_for_its_slot_is_not_polled_for(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)  # Anna's chat with the bot exists
    await world.settle()
    before = len(world.telegram.messages(ANNA.id))

    outbox_queries: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "outbox" in statement.lower():
            outbox_queries.append(statement)

    engine = world.db.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        async with AsyncSession(world.db.engine) as s:
            s.add_all(
                OutboxMessage(chat_id=ANNA.id, kind=OutboxKind.SEND, text=f"Message {n}")
                for n in (1, 2)
            )
            await s.commit()
        world.bot.delivery.wake()
        first = await world.telegram.wait_for(ANNA.id, "Message 1", timeout=5)
        sent_first = time.monotonic()
        outbox_queries.clear()
        # The second message waits for Anna's chat to be ready again (one per second).
        await asyncio.sleep(0.8)
        assert len(world.telegram.messages(ANNA.id)) == before + 1
        waiting = len(outbox_queries)
        second = await world.telegram.wait_for(ANNA.id, "Message 2", timeout=5)
        took = time.monotonic() - sent_first
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert first.text == "Message 1" and second.text == "Message 2"
    # Before: the outbox was queried every 10 ms while the chat waited (~160 statements here).
    assert waiting <= 5, outbox_queries
    assert 0.9 <= took < 1.6
