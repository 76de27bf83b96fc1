"""A breakage waiting for the managers' daily digest is dropped when a manager withdraws the
invitation before the digest goes out: the digest does not report a connection the brand has
already ended (found in the playground walk of issue 11)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlmodel import col

from bot.models import Connection, OutboxMessage, OutboxStatus, utcnow
from tests.world import ANNA, MANAGER, World, anna_on_facebook, close_world, make_world


@pytest.fixture
async def kept(database_url: str) -> AsyncIterator[World]:
    world = await make_world(database_url)
    await world.bot.jobs.stop()  # only the test runs health rounds
    try:
        yield world
    finally:
        await close_world(world)


async def test_a_withdrawn_connection_is_not_in_the_digest(kept: World) -> None:
    world = kept
    token = await world.invite("@anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(MANAGER.id, "is connected")

    world.graph.change_password("fb-anna")
    async with world.db.transaction() as s:
        await s.exec(sa.update(Connection).values(next_check_at=None))
    report = await world.bot.upkeep.run_round()
    assert (report.checked, report.changed) == (1, 1)
    await world.telegram.wait_for(ANNA.id, "stopped working")
    waiting = await world.rows(
        "SELECT text FROM outbox WHERE status = 'pending' AND audience IS NOT NULL"
    )
    assert [t for (t,) in waiting if "@anna.bakes" in str(t)], "the digest waits for its hour"

    before = len(world.telegram.messages(MANAGER.id))
    await world.revoke("@anna.bakes")
    # The digest's hour comes.
    async with world.db.transaction() as s:
        await s.exec(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
            .values(due_at=utcnow())
        )
    world.bot.notices.ring()
    await world.settle()
    told = [m.text for m in world.telegram.messages(MANAGER.id)[before:]]
    assert not [t for t in told if "stopped working" in t], told
    dropped = await world.rows(
        "SELECT count(*) FROM outbox WHERE status = 'dropped' AND text LIKE '%stopped working%'"
    )
    assert dropped == [(1,)]
