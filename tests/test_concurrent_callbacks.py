"""Two (or more) browsers hitting the OAuth callback with the same state at the same moment, on
SQLite and PostgreSQL: the state is consumed once, so Facebook sees one code exchange, one verdict
is stored, and each person is told once."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from tests.world import ANNA, MANAGER, World, anna_on_facebook


async def _scalar(world: World, query: str) -> object:
    async with world.db.engine.connect() as conn:
        return (await conn.execute(sa.text(query))).scalar_one()


def _count(world: World, chat_id: int, text: str) -> int:
    """How often the text arrived (notices to one chat may come combined in one message)."""
    return sum(m.text.count(text) for m in world.telegram.messages(chat_id))


@pytest.mark.parametrize("copies", [2, 5])
async def test_concurrent_callbacks_with_one_state_verify_once(world: World, copies: int) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    world.graph.set_person(anna_on_facebook())
    dialog = await world.browser.get(world.login_url(ANNA))
    callback = dialog.headers["location"]
    code = parse_qs(urlsplit(callback).query)["code"][0]

    # Fired together: every request is in flight before any is answered.
    pages = await asyncio.gather(*(world.browser.get(callback) for _ in range(copies)))
    statuses = sorted(p.status_code for p in pages)
    assert statuses == [200] + [409] * (copies - 1), statuses
    winner = next(p for p in pages if p.status_code == 200)
    assert "Connected" in winner.text
    assert all("already been used" in p.text for p in pages if p.status_code == 409)

    await world.telegram.wait_for(ANNA.id, "Connected!", timeout=10)
    await world.telegram.wait_for(MANAGER.id, "@anna.bakes is connected", timeout=10)
    async with asyncio.timeout(15):
        while await _scalar(world, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # longer than notices wait to be combined: a second one would show

    exchanges = [
        q for _, path, q in world.graph.requests
        if path.endswith("/oauth/access_token") and q.get("code") == code
    ]  # fmt: skip
    assert len(exchanges) == 1
    assert await _scalar(world, "SELECT COUNT(*) FROM login_attempt WHERE used_at IS NOT NULL") == 1
    assert await _scalar(world, "SELECT COUNT(*) FROM login_attempt WHERE outcome IS NOT NULL") == 1
    assert await _scalar(world, "SELECT COUNT(*) FROM invitation_event WHERE kind = 'verdict'") == 1
    assert await _scalar(world, "SELECT COUNT(*) FROM connection") == 1
    assert _count(world, ANNA.id, "Connected!") == 1
    assert _count(world, MANAGER.id, "@anna.bakes is connected") == 1
