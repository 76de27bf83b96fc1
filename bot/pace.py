"""One budget for everything the bot sends: Telegram's flood limits, kept by us.

Telegram takes about 30 messages per second from a bot overall and about one per second per
private chat (short bursts are tolerated); over that it answers 429 with `retry_after`. Two kinds
of sender share that budget:

* the delivery worker (`bot.notify`), which paces itself: it takes a global slot and keeps each
  chat about a second apart, and handles a 429 by rescheduling the message;
* the handlers' direct replies, which go through `SharedLimiter`, PTB's rate limiter hook: every
  message takes a slot on the same global timeline, and a 429 makes it wait `retry_after` and try
  again, instead of the reply being lost. PTB's own `AIORateLimiter` would not do: it has no
  per-chat limit, does not share its budget with the worker, and up to 22.8 a concurrent request
  can end its 429 pause early (python-telegram-bot#5338).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

__all__ = ["GLOBAL_PER_SECOND", "PER_CHAT_INTERVAL", "Pacer", "SharedLimiter", "self_paced"]

log = logging.getLogger(__name__)

# Telegram: "about 30 messages per second" overall; a little below, for safety.
GLOBAL_PER_SECOND = 28.0
# Per private chat: about one per second.
PER_CHAT_INTERVAL = 1.05
# A reply that meets 429 is tried again this often, waiting at most this long in all: longer
# and the person's next updates (which wait for this one) would stall.
REPLY_RETRIES = 5
REPLY_MAX_WAIT = 60.0
# After a 429 a chat gets no more bursts for this long: its messages keep the interval.
_STRICT_AFTER_429 = 10.0

# Methods that put something in a chat and so count against the flood limits.
_FLOOD_LIMITED = frozenset(
    {
        "sendMessage", "sendPhoto", "sendDocument", "sendVideo", "sendAudio", "sendVoice",
        "sendAnimation", "sendSticker", "sendMediaGroup", "sendLocation", "sendContact",
        "sendPoll", "sendDice", "copyMessage", "copyMessages", "forwardMessage",
        "forwardMessages", "editMessageText", "editMessageCaption", "editMessageMedia",
        "editMessageReplyMarkup",
    }
)  # fmt: skip

_self_paced: contextvars.ContextVar[bool] = contextvars.ContextVar("self_paced", default=False)


@contextlib.contextmanager
def self_paced() -> Iterator[None]:
    """Requests made inside are already paced by their sender, which also handles 429 itself
    (the delivery worker): the limiter lets them straight through."""
    token = _self_paced.set(True)
    try:
        yield
    finally:
        _self_paced.reset(token)


class Pacer:
    """Evenly spaced global slots, and a per-chat earliest time."""

    def __init__(
        self, per_second: float = GLOBAL_PER_SECOND, chat_interval: float = PER_CHAT_INTERVAL
    ) -> None:
        self._gap = 1.0 / per_second
        self._chat_interval = chat_interval
        self._next_slot = 0.0
        self._chat_ready: dict[int, float] = {}
        # Chats Telegram told to wait (429): nobody sends there before this time, and until the
        # second time, replies there too keep the per-chat interval (one message per second).
        self._chat_blocked: dict[int, float] = {}
        self._chat_strict: dict[int, float] = {}

    def chat_ready(self, chat_id: int, now: float) -> bool:
        return self._chat_ready.get(chat_id, 0.0) <= now

    def hold_chat(self, chat_id: int, until: float) -> None:
        self._chat_ready[chat_id] = max(self._chat_ready.get(chat_id, 0.0), until)

    def block_chat(self, chat_id: int, until: float) -> None:
        """Telegram answered 429 for this chat: hold it for everyone until `until`."""
        self.hold_chat(chat_id, until)
        self._chat_blocked[chat_id] = max(self._chat_blocked.get(chat_id, 0.0), until)
        self._chat_strict[chat_id] = until + _STRICT_AFTER_429

    async def wait_for_chat(self, chat_id: int) -> None:
        """Until a 429 pause of this chat is over, and for a while after it until the chat's
        interval has passed (no wait for a chat without a recent 429: short bursts of replies
        are fine with Telegram)."""
        while True:
            now = time.monotonic()
            ready = self._chat_blocked.get(chat_id, 0.0)
            if self._chat_strict.get(chat_id, 0.0) > now:
                ready = max(ready, self._chat_ready.get(chat_id, 0.0))
            else:
                self._chat_strict.pop(chat_id, None)
            if ready <= now:
                self._chat_blocked.pop(chat_id, None)
                return
            await asyncio.sleep(ready - now)

    def ready_at(self, chat_id: int) -> float:
        """When the chat may have its next message (time.monotonic(); past: now)."""
        return self._chat_ready.get(chat_id, 0.0)

    async def global_slot(self, chat_id: int | None) -> None:
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._gap
        if chat_id is not None:
            self.hold_chat(chat_id, slot + self._chat_interval)
        if slot > now:
            await asyncio.sleep(slot - now)
        if len(self._chat_ready) > 10_000:  # forget chats that are long ready
            self._chat_ready = {c: t for c, t in self._chat_ready.items() if t > now}


class SharedLimiter(BaseRateLimiter[None]):
    """PTB's rate limiter hook: the handlers' requests within the budget shared with the delivery
    worker, and retried after a 429 instead of failing."""

    def __init__(
        self, pacer: Pacer, *, retries: int = REPLY_RETRIES, max_wait: float = REPLY_MAX_WAIT
    ) -> None:
        self.pacer = pacer
        self._retries = retries
        self._max_wait = max_wait
        # One request at a time per chat, first come first served: after a 429, requests that
        # waited for the same chat would otherwise race again, and one could lose every time.
        self._chat_turns: dict[int, tuple[asyncio.Lock, int]] = {}

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        if _self_paced.get():
            return await callback(*args, **kwargs)
        chat_id = _chat_id(data.get("chat_id"))
        limited = endpoint in _FLOOD_LIMITED
        if chat_id is None or not limited:
            return await self._with_retries(callback, args, kwargs, endpoint, chat_id, limited)
        lock, users = self._chat_turns.get(chat_id, (asyncio.Lock(), 0))
        self._chat_turns[chat_id] = (lock, users + 1)
        try:
            async with lock:
                return await self._with_retries(callback, args, kwargs, endpoint, chat_id, True)
        finally:
            lock, users = self._chat_turns[chat_id]
            if users <= 1:
                del self._chat_turns[chat_id]
            else:
                self._chat_turns[chat_id] = (lock, users - 1)

    async def _with_retries(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        chat_id: int | None,
        limited: bool,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        waited = 0.0
        for attempt in range(self._retries + 1):
            if chat_id is not None:
                await self.pacer.wait_for_chat(chat_id)
            if limited:
                await self.pacer.global_slot(chat_id)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                delay = _seconds(exc.retry_after)
                waited += delay
                if attempt == self._retries or waited > self._max_wait:
                    raise
                log.info("%s to chat %s: flood control, retry in %.0fs", endpoint, chat_id, delay)
                if chat_id is not None:
                    self.pacer.block_chat(chat_id, time.monotonic() + delay)
                else:
                    await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _chat_id(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None  # a channel's @username, or no chat (inline messages)


def _seconds(value: object) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float):
        return float(value)
    return 1.0
