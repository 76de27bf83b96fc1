"""Updates of different people are handled at the same time; one person's, one after another.

PTB handles updates one by one unless told otherwise, and then (`concurrent_updates`) with no
order at all: a person's second tap could be handled before their first. Every step of the flow
reads and moves the step stored in the database, so a person's updates must be handled in the
order they came, while other people need not wait for them (most of an update's time is spent
waiting for Telegram and the database).

Order holds because PTB starts a task per update in the order the updates arrive, each task takes
the processor's semaphore in that order (asyncio's semaphore is first come, first served) and
`do_process_update` queues the update behind the same person's previous one before it first
waits for anything.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

# Enough to keep the core busy while some updates wait for Telegram or the database. More is
# slower, not faster: every request through httpcore's connection pool (1.0.x) scans all of the
# pool's connections and polls each idle socket, so the CPU per request grows with the number of
# requests in flight (encode/httpcore#1035). Measured with bench/ (docs/benchmarks.md): with 4 or
# 8 the guided flow runs up to 1.7x faster than one at a time on PostgreSQL, with 64 no faster.
MAX_CONCURRENT_UPDATES = 8


class PerPersonOrder(BaseUpdateProcessor):
    def __init__(self, max_concurrent_updates: int = MAX_CONCURRENT_UPDATES) -> None:
        super().__init__(max_concurrent_updates)
        # The event the next update of a person waits for: set when their latest one is done.
        self._latest: dict[int, asyncio.Event] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = _person(update)
        if key is None:
            await coroutine
            return
        previous = self._latest.get(key)
        done = asyncio.Event()
        self._latest[key] = done
        try:
            if previous is not None:
                await previous.wait()
            await coroutine
        finally:
            if inspect.iscoroutine(coroutine) and inspect.getcoroutinestate(coroutine) == (
                inspect.CORO_CREATED
            ):
                coroutine.close()  # cancelled while waiting its turn: it will never run
            done.set()
            if self._latest.get(key) is done:
                del self._latest[key]

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
