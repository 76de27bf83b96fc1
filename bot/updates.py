"""Updates of different people are handled at the same time; one person's, one after another.

PTB handles updates one by one unless told otherwise, and then (`concurrent_updates`) with no
order at all: a person's second tap could be handled before their first. Every step of the flow
reads and moves the step stored in the database, so a person's updates must be handled in the
order they came, while other people need not wait for them (most of an update's time is spent
waiting for Telegram and the database).

Order holds because PTB starts a task per update in the order the updates arrive, each task takes
the processor's semaphore in that order (asyncio's semaphore is first come, first served) and
`do_process_update` queues the update behind the same person's previous one before it first
waits for anything. An update waiting for the person's previous one holds no slot of
`max_concurrent_updates`: a person with many updates queued cannot keep everyone else waiting.

One person cannot flood the bot either: `PersonRate` lets a burst through and then about one
update per second; the rest is ignored and the person told once (`on_flood`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

# Enough to keep the core busy while some updates wait for Telegram or the database. More is
# slower, not faster: every request through httpcore's connection pool (1.0.x) scans all of the
# pool's connections and polls each idle socket, so the CPU per request grows with the number of
# requests in flight (encode/httpcore#1035). Measured with bench/ (docs/benchmarks.md): with 4 or
# 8 the guided flow runs up to 1.7x faster than one at a time on PostgreSQL, with 64 no faster.
MAX_CONCURRENT_UPDATES = 8
# Updates taken in (running, or waiting for their person's previous one) before PTB makes further
# ones wait: the bound on tasks, not on work (that is `max_concurrent_updates`).
_MAX_PENDING_UPDATES = 1000

log = logging.getLogger(__name__)


class Admission(Enum):
    HANDLE = "handle"
    IGNORE = "ignore"
    IGNORE_AND_TELL = "ignore_and_tell"  # the first ignored one of a flood


class PersonRate:
    """A token bucket per person: `burst` updates at once, then `per_second` (messages and button
    presses alike). Someone over it is told once per flood: again only after they calmed down
    long enough for the whole burst to be available again."""

    def __init__(
        self, *, burst: int, per_second: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._burst = float(burst)
        self._rate = per_second
        self._clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # person → (tokens, at)
        self._told: set[int] = set()

    def admit(self, person: int) -> Admission:
        now = self._clock()
        tokens, at = self._buckets.get(person, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= self._burst:
            self._told.discard(person)  # calm again: a new flood is told again
        if len(self._buckets) > 10_000:
            self._forget_calm(now)
        if tokens >= 1.0:
            self._buckets[person] = (tokens - 1.0, now)
            return Admission.HANDLE
        self._buckets[person] = (tokens, now)
        if person in self._told:
            return Admission.IGNORE
        self._told.add(person)
        return Admission.IGNORE_AND_TELL

    def _forget_calm(self, now: float) -> None:
        full = self._burst / self._rate
        self._buckets = {p: (t, at) for p, (t, at) in self._buckets.items() if now - at < full}
        self._told &= set(self._buckets)


FloodHook = Callable[[Update], Awaitable[None]]


class PerPersonOrder(BaseUpdateProcessor):
    def __init__(
        self,
        max_concurrent_updates: int = MAX_CONCURRENT_UPDATES,
        *,
        rate: PersonRate | None = None,
        on_flood: FloodHook | None = None,
    ) -> None:
        # PTB's semaphore bounds the updates taken in; ours, the ones being worked on.
        super().__init__(max(_MAX_PENDING_UPDATES, max_concurrent_updates))
        self._working = asyncio.Semaphore(max_concurrent_updates)
        # The event the next update of a person waits for: set when their latest one is done.
        self._latest: dict[int, asyncio.Event] = {}
        self._rate = rate
        self._on_flood = on_flood
        self.ignored = 0  # updates dropped by the rate limit (tests and logs count them)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = _person(update)
        if key is None:
            async with self._working:
                await coroutine
            return
        admission = self._rate.admit(key) if self._rate is not None else Admission.HANDLE
        if admission is not Admission.HANDLE:
            self.ignored += 1
            if inspect.iscoroutine(coroutine):
                coroutine.close()
            if admission is Admission.IGNORE_AND_TELL:
                log.info("person %s sends too fast: ignoring their updates for now", key)
            if (
                admission is Admission.IGNORE
                or self._on_flood is None
                or not isinstance(update, Update)
            ):
                return
            # Told in the person's line like an update: after the answers to what was accepted
            # before, before anything accepted later.
            coroutine = self._tell(key, self._on_flood, update)
        previous = self._latest.get(key)
        done = asyncio.Event()
        self._latest[key] = done
        try:
            if previous is not None:
                await previous.wait()
            async with self._working:
                await coroutine
        finally:
            if inspect.iscoroutine(coroutine) and inspect.getcoroutinestate(coroutine) == (
                inspect.CORO_CREATED
            ):
                coroutine.close()  # cancelled while waiting its turn: it will never run
            done.set()
            if self._latest.get(key) is done:
                del self._latest[key]

    @staticmethod
    async def _tell(key: int, on_flood: FloodHook, update: Update) -> None:
        try:
            await on_flood(update)
        except Exception:
            log.exception("could not tell person %s to slow down", key)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


def _person(update: object) -> int | None:
    """Whose update it is: the sender, or the chat for updates without one."""
    if not isinstance(update, Update):
        return None
    if update.effective_user is not None:
        return update.effective_user.id
    if update.effective_chat is not None:
        return update.effective_chat.id
    return None
