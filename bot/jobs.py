"""Periodic jobs (housekeeping, checks), run once across the fleet.

Only the process holding the leader lease (`store.LeaderLease`, the delivery worker's) runs them;
the others tick along idle and take over when the leader dies. A new leader knows nothing of its
predecessor's schedule and runs every job soon after taking over, so each job must be idempotent
(a conditional UPDATE, a delete by age): running it twice in a row changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.models import utcnow
from bot.store import Database, LeaderLease

if TYPE_CHECKING:
    from bot.meta import PrivacyService
    from bot.revocations import Revocations
    from bot.upkeep import Upkeep

log = logging.getLogger(__name__)

TICK_SECONDS = 30.0
RETRY_SECONDS = 300.0  # a failed job runs again after this long (or its interval, if shorter)


@dataclass(frozen=True)
class Job:
    name: str
    every: timedelta
    run: Callable[[], Awaitable[object]]
    # Not at once when a process starts leading, but one interval later (work that is never
    # urgent, and that a restart should not set off).
    wait_first: bool = False


class PeriodicJobs:
    def __init__(
        self,
        *,
        lease: LeaderLease,
        jobs: Sequence[Job],
        tick: float = TICK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lease = lease
        self._jobs = list(jobs)
        self._tick = tick
        self._clock = clock
        self._last_run: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs)

    def add(self, job: Job) -> None:
        self._jobs.append(job)

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="periodic-jobs")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        await self._task
        self._task = None

    async def run_due(self) -> list[str]:
        """One tick: the jobs that are due, if this process is the leader. Returns their names."""
        if not self._lease.held:
            # Whoever leads now keeps the schedule; should we lead again, start afresh.
            self._last_run.clear()
            return []
        ran = []
        for job in self._jobs:
            if self._stopping.is_set() or not self._lease.held:
                break
            last = self._last_run.get(job.name)
            now = self._clock()
            if last is None and job.wait_first:
                self._last_run[job.name] = now
                continue
            if last is not None and now - last < job.every.total_seconds():
                continue
            self._last_run[job.name] = now
            try:
                result = await job.run()
            except Exception:
                # Nothing is lost: the next run does the same work again.
                log.exception("periodic job %s failed", job.name)
                every = job.every.total_seconds()
                self._last_run[job.name] = now - every + min(every, RETRY_SECONDS)
                continue
            log.info("periodic job %s done: %s", job.name, result)
            ran.append(job.name)
        return ran

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_due()
            except Exception:
                log.exception("periodic jobs tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._tick)


def fleet_jobs(
    db: Database,
    privacy: PrivacyService,
    revocations: Revocations | None = None,
    upkeep: Upkeep | None = None,
) -> list[Job]:
    """The jobs every deployment runs (the leader only)."""

    async def forget_updates() -> int:
        # Telegram redelivers an update for at most a day; two days of ids is plenty.
        return await db.updates.forget_updates_before(utcnow() - timedelta(days=2))

    async def prune_outbox() -> int:
        return await db.outbox.prune_outbox(before=utcnow() - timedelta(days=7))

    async def prune_login_attempts() -> int:
        # A day after expiry an unused login link is answered "unknown" instead of "expired".
        return await db.logins.prune_login_attempts(expired_before=utcnow() - timedelta(days=1))

    jobs = [
        Job("forget_updates", timedelta(days=1), forget_updates),
        Job("finish_deletions", timedelta(minutes=10), privacy.finish_deletions),
        Job("prune_outbox", timedelta(hours=6), prune_outbox),
        Job("prune_login_attempts", timedelta(hours=1), prune_login_attempts),
    ]
    if revocations is not None:
        from bot.revocations import RETRY_EVERY

        # Each row carries its own next try (backing off); the job only picks the due ones.
        jobs.append(Job("retry_revocations", RETRY_EVERY, revocations.retry_due))
    if upkeep is not None:
        # Each connection carries its own next check; a round takes only the due ones.
        jobs.append(Job("health_checks", upkeep.every, upkeep.periodic_round))
    return jobs
