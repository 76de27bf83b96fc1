"""Periodic jobs run on the leader only, each on its interval, and the leader lease passes to
another process when the leader's database connection dies (its process was killed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.jobs import RETRY_SECONDS, Job, PeriodicJobs, fleet_jobs
from bot.meta import PrivacyService
from bot.models import OutboxMessage, TelegramUpdate, utcnow
from bot.store import Database, LeaderLease
from tests.world import World


class _Lease:
    held = False


class _Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_jobs_run_on_the_leader_only_each_on_its_interval() -> None:
    ran: list[str] = []
    failures = {"flaky": 1}

    def job(name: str) -> Job:
        async def run() -> None:
            if failures.get(name):
                failures[name] -= 1
                raise RuntimeError("database briefly gone")
            ran.append(name)

        return Job(name, {"daily": timedelta(days=1)}.get(name, timedelta(minutes=10)), run)

    lease, clock = _Lease(), _Clock()
    jobs = PeriodicJobs(
        lease=lease,  # type: ignore[arg-type]
        jobs=[job("daily"), job("often")],
        clock=clock,
    )
    jobs.add(job("flaky"))  # how the stalled-invitations check joins later

    assert await jobs.run_due() == []  # not the leader: nothing runs
    lease.held = True
    assert await jobs.run_due() == ["daily", "often"]  # flaky failed, logged, not fatal
    clock.now += 60
    assert await jobs.run_due() == []
    clock.now += RETRY_SECONDS
    assert await jobs.run_due() == ["flaky"]  # retried after RETRY_SECONDS, not after its interval
    clock.now += 10 * 60
    assert await jobs.run_due() == ["often", "flaky"]
    clock.now += 24 * 3600
    assert await jobs.run_due() == ["daily", "often", "flaky"]
    lease.held = False  # another replica leads now: it keeps the schedule
    clock.now += 24 * 3600
    assert await jobs.run_due() == []
    lease.held = True  # leading again: run everything soon, as a new leader does
    assert await jobs.run_due() == ["daily", "often", "flaky"]
    assert ran.count("daily") == 3


async def test_a_job_that_waits_first_runs_one_interval_after_leading_starts() -> None:
    ran: list[str] = []

    async def run() -> None:
        ran.append("figures")

    lease, clock = _Lease(), _Clock()
    lease.held = True
    jobs = PeriodicJobs(
        lease=lease,  # type: ignore[arg-type]
        jobs=[Job("figures", timedelta(minutes=15), run, wait_first=True)],
        clock=clock,
    )
    assert await jobs.run_due() == []  # a new leader (a restart) does not set it off
    clock.now += 14 * 60
    assert await jobs.run_due() == []
    clock.now += 60
    assert await jobs.run_due() == ["figures"]
    assert ran == ["figures"]


async def test_the_loop_runs_and_stops(tmp_path: object) -> None:
    ran = asyncio.Event()

    async def run() -> None:
        ran.set()

    lease = _Lease()
    lease.held = True
    jobs = PeriodicJobs(lease=lease, jobs=[Job("x", timedelta(hours=1), run)], tick=0.01)  # type: ignore[arg-type]
    jobs.start()
    await asyncio.wait_for(ran.wait(), 5)
    await asyncio.wait_for(jobs.stop(), 5)


async def test_the_fleet_jobs(db: Database) -> None:
    """Old update ids are forgotten; recent ones (Telegram may still redeliver) are kept.
    Delivered outbox rows go after a week; pending ones never."""
    now = utcnow()
    async with db.session() as s:
        s.add(TelegramUpdate(update_id=1, received_at=now - timedelta(days=3)))
        s.add(TelegramUpdate(update_id=2, received_at=now - timedelta(hours=3)))
        for status, age in (("sent", 8), ("sent", 1), ("pending", 8)):
            s.add(
                OutboxMessage(
                    chat_id=1,
                    kind="send",
                    text=f"{status} {age}",
                    status=status,
                    created_at=now - timedelta(days=age),
                    due_at=now,
                )
            )
        await s.commit()
    privacy = PrivacyService(
        db=db, app_secret="s", public_url="https://bot.example", default_language="en"
    )
    lease = LeaderLease(db)
    jobs = PeriodicJobs(lease=lease, jobs=fleet_jobs(db, privacy))
    assert await jobs.run_due() == []  # the lease is not taken yet
    assert await lease.acquire()
    try:
        assert await jobs.run_due() == [
            "forget_updates",
            "finish_deletions",
            "prune_outbox",
            "prune_login_attempts",
        ]
    finally:
        await lease.release()
    async with db.engine.connect() as conn:
        kept = (await conn.execute(sa.text("SELECT update_id FROM telegram_update"))).all()
        outbox = (await conn.execute(sa.text("SELECT text FROM outbox ORDER BY id"))).all()
    assert [tuple(r) for r in kept] == [(2,)]
    assert [tuple(r) for r in outbox] == [("sent 1",), ("pending 8",)]


async def test_the_bot_runs_its_jobs(world: World) -> None:
    names = [j.name for j in world.bot.jobs.jobs]
    assert names[:2] == ["forget_updates", "finish_deletions"]
    lease = world.bot.delivery.lease
    async with asyncio.timeout(5):
        while not lease.held:  # noqa: ASYNC110 - the delivery worker takes it on its own
            await asyncio.sleep(0.02)
    await world.bot.jobs.stop()  # one caller at a time
    # The loop may have run them already as the lease was taken; then none is due yet.
    assert await world.bot.jobs.run_due() in (names, [])


# --- the lease on PostgreSQL ---------------------------------------------------------------------


@pytest.fixture
async def two_processes(postgres_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two engines on one database, as two replicas have (PostgreSQL: SQLite serves one
    process, which always leads)."""
    first, second = Database(postgres_url), Database(postgres_url)
    await first.migrate()
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def _holder(db: Database) -> int | None:
    key = LeaderLease.KEY
    async with db.engine.connect() as conn:
        return (
            await conn.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = :hi AND objid = :lo AND objsubid = 1 AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"hi": key >> 32, "lo": key & 0xFFFF_FFFF},
            )
        ).scalar_one_or_none()


async def test_the_lease_passes_on_when_the_leader_dies(
    two_processes: tuple[Database, Database],
) -> None:
    first_db, second_db = two_processes
    first, second = LeaderLease(first_db), LeaderLease(second_db)
    ran: list[str] = []

    def jobs_of(name: str, lease: LeaderLease) -> PeriodicJobs:
        async def run() -> None:
            ran.append(name)

        return PeriodicJobs(lease=lease, jobs=[Job("cleanup", timedelta(days=1), run)])

    first_jobs, second_jobs = jobs_of("first", first), jobs_of("second", second)
    try:
        assert await first.acquire() and await first.acquire()  # re-acquiring keeps it
        assert not await second.acquire()
        assert first.held and not second.held
        await first_jobs.run_due()
        await second_jobs.run_due()
        assert ran == ["first"]  # once across the fleet

        # The leader's process dies: PostgreSQL ends its session, and the lock with it.
        leader = await _holder(second_db)
        assert leader is not None
        async with second_db.engine.connect() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": leader})
        async with asyncio.timeout(10):
            while not await second.acquire():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert await _holder(second_db) not in (None, leader)
        # The old leader notices it lost the lease instead of carrying on as leader.
        assert not await first.acquire() and not first.held
        await first_jobs.run_due()
        await second_jobs.run_due()
        assert ran == ["first", "second"]

        # A clean stop hands over at once.
        await second.release()
        assert await first.acquire()
    finally:
        await first.release()
        await second.release()
