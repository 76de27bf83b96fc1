"""The one module that sends messages caused by events (results, notifications, reminders).

Events write their messages to the outbox table in the same transaction (`store.Outgoing`); the
`DeliveryWorker` here delivers them:

* within Telegram's limits, paced by us rather than by trial and error: about 30 messages/s
  overall and 1 message/s per chat (PTB's AIORateLimiter has no per-chat limit, and up to 22.8 a
  concurrent request can end its 429 pause early);
* several notices waiting for the same chat go out as one message, and of several edits of one
  message only the newest is sent — a manager with 150 results at once gets a handful of
  messages, not 150 at one per second;
* 429 waits `retry_after`; 5xx and network errors back off; 400 is final, except that a text
  refused for its length or markup goes out as plain text (`bot.fit`); 403 goes to the
  `on_unreachable` hook, which blames only the chat that failed (an influencer's own chat: the
  managers are told; a team chat: it is unregistered); a group upgraded to a supergroup gets its
  new id stored and the message resent there;
* a message for a brand's managers or team chat is dropped when its recipient no longer is one;
* one worker at a time across all replicas (`store.LeaderLease`); a crash between commit and send
  loses nothing, the next leader sends it;
* it sleeps on the `bot.notices.Doorbell`, which whoever writes to the outbox rings.

Which rows to write (and in which language) is `bot.notices`'s part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from telegram import Bot, InlineKeyboardMarkup
from telegram.constants import MessageLimit, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bot.fit import plain_version, refused_for_form, telegram_length
from bot.models import OutboxKind, OutboxMessage, OutboxStatus, utcnow
from bot.notices import Doorbell
from bot.pace import GLOBAL_PER_SECOND, PER_CHAT_INTERVAL, Pacer, self_paced
from bot.store import Database, LeaderLease

log = logging.getLogger(__name__)

# Telegram's limits are kept in `bot.pace`: the worker shares its `Pacer` (about 30 messages/s
# overall, one per second per chat) with the handlers' direct replies.
MAX_IN_FLIGHT = 32
MAX_ATTEMPTS = 25  # with the backoff cap below: retried for about two hours
_BACKOFF_CAP = 300.0
_IDLE_POLL = 1.0  # how often to look for rows other replicas committed
_FETCH = 300


_EDITS = (OutboxKind.EDIT, OutboxKind.EDIT_CAPTION, OutboxKind.EDIT_MARKUP)


@dataclass
class _Delivery:
    """What one Telegram call delivers: one or more outbox rows."""

    chat_id: int
    kind: OutboxKind
    text: str
    keyboard: str | None
    edit_message_id: int | None
    rows: list[OutboxMessage] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.rows if r.id is not None]


def plan(rows: Sequence[OutboxMessage]) -> tuple[list[_Delivery], list[int]]:
    """Group due rows into deliveries: at most one per chat per round (the per-chat limit),
    notices to one chat combined up to Telegram's text limit, only the newest edit of a message.
    Returns the deliveries and the ids of edits made obsolete by a newer one."""
    superseded: list[int] = []
    newest_edit: dict[tuple[int, int], OutboxMessage] = {}
    for row in rows:
        if row.kind in _EDITS and row.edit_message_id is not None:
            key = (row.chat_id, row.edit_message_id)
            older = newest_edit.get(key)
            if older is not None and older.id is not None:
                superseded.append(older.id)
            newest_edit[key] = row
    by_chat: dict[int, _Delivery] = {}
    # News before cosmetics: a chat's slot goes to messages first; edits of live cards (only the
    # newest of each counts anyway) take the slots that are left.
    for row in sorted(rows, key=lambda r: (r.kind in _EDITS, r.id or 0)):
        if row.kind in _EDITS and row.id in superseded:
            continue
        current = by_chat.get(row.chat_id)
        if current is None:
            by_chat[row.chat_id] = _Delivery(
                row.chat_id,
                OutboxKind(row.kind),
                row.text,
                row.keyboard,
                row.edit_message_id,
                [row],
            )
        elif (
            current.kind == OutboxKind.NOTICE
            and row.kind == OutboxKind.NOTICE
            and current.keyboard is None
            and row.keyboard is None
            and telegram_length(current.text) + 2 + telegram_length(row.text)
            <= MessageLimit.MAX_TEXT_LENGTH
        ):
            current.text += "\n\n" + row.text
            current.rows.append(row)
        # Anything else for this chat waits for the next round (one message per chat per second).
    return list(by_chat.values()), superseded


UnreachableHook = Callable[[Sequence[OutboxMessage]], Awaitable[None]]


class DeliveryWorker:
    def __init__(
        self,
        *,
        db: Database,
        bot: Bot,
        on_unreachable: UnreachableHook | None = None,
        per_second: float = GLOBAL_PER_SECOND,
        chat_interval: float = PER_CHAT_INTERVAL,
        pacer: Pacer | None = None,
        doorbell: Doorbell | None = None,
    ) -> None:
        self._db = db
        self._bot = bot
        self._on_unreachable = on_unreachable
        # The bot's (`bot.pace.SharedLimiter`) when it has one: one budget for all sends.
        self._pacer = pacer or Pacer(per_second, chat_interval)
        # Rung by whoever writes to the outbox (`bot.notices.Notices`), and by finished sends.
        self._doorbell = doorbell or Doorbell()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[int] = set()
        # Ids whose delivery finished since the current round began: the round's query may have
        # read them as pending just before they were settled, and must not send them again.
        self._finished: set[int] = set()
        self._busy_chats: set[int] = set()
        # Set by each round: the chats it left waiting for their per-chat slot, and when the
        # earliest of them is ready (time.monotonic()).
        self._waiting_chats: set[int] = set()
        self._waiting_until: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.lease = LeaderLease(db)

    def wake(self) -> None:
        self._doorbell.ring()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="delivery-worker")

    async def stop(self, *, drain_seconds: float = 5.0) -> None:
        """Deliver what is due (up to `drain_seconds`), then stop. Whatever is left stays in
        the outbox and goes out after the next start."""
        if self._task is None:
            return
        deadline = time.monotonic() + drain_seconds
        while time.monotonic() < deadline and self.lease.held:
            if not self._tasks and not await self._db.outbox.due_messages(limit=1):
                break
            await asyncio.sleep(0.05)
        self._stopping = True
        self._doorbell.ring()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self.lease.release()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if not await self.lease.acquire():
                    await self._sleep(2.0)  # another replica delivers; take over if it dies
                    continue
                launched = await self._round()
                if not launched:
                    await self._sleep(await self._idle_time())
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database may be briefly unreachable: nothing is lost, try again shortly.
                log.exception("delivery round failed")
                await self.lease.release()
                await self._sleep(2.0)

    async def _idle_time(self) -> float:
        """Until the earliest chat the last round left waiting for its slot is ready, or a row
        for another chat is due: a waiting chat's rows are not polled for (before, the worker
        queried the outbox every 10 ms until the chat was ready). A chat busy with a delivery
        wakes the worker when it is done; rows other replicas commit are looked for every
        `_IDLE_POLL`."""
        wait = _IDLE_POLL
        next_due = await self._db.outbox.next_due_at(
            besides=self._waiting_chats | self._busy_chats
        )
        if next_due is not None:
            wait = min(wait, max(0.0, (next_due - utcnow()).total_seconds()))
        if self._waiting_until is not None:
            wait = min(wait, max(0.0, self._waiting_until - time.monotonic()))
        return max(wait, 0.01)

    async def _sleep(self, seconds: float) -> None:
        await self._doorbell.wait(seconds)

    async def _round(self) -> int:
        finished: set[int] = set()
        self._finished = finished
        due = await self._db.outbox.due_messages(limit=_FETCH)
        rows = [r for r in due if r.id not in self._in_flight and r.id not in finished]
        rows = await self._still_addressed(rows)
        deliveries, superseded = plan(rows)
        await self._db.outbox.settle(superseded, status=OutboxStatus.SUPERSEDED)
        now = time.monotonic()
        ready = [
            d
            for d in deliveries
            if d.chat_id not in self._busy_chats and self._pacer.chat_ready(d.chat_id, now)
        ]
        self._waiting_chats = {
            d.chat_id
            for d in deliveries
            if d.chat_id not in self._busy_chats and not self._pacer.chat_ready(d.chat_id, now)
        }
        self._waiting_until = min(map(self._pacer.ready_at, self._waiting_chats), default=None)
        for delivery in ready:
            if self._stopping:
                break
            await self._slots.acquire()
            await self._pacer.global_slot(delivery.chat_id)
            self._in_flight.update(delivery.ids)
            self._busy_chats.add(delivery.chat_id)
            task = asyncio.create_task(self._deliver(delivery))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(ready)

    async def _still_addressed(self, rows: list[OutboxMessage]) -> list[OutboxMessage]:
        """Messages for a brand's managers or team chat are checked once more just before they
        go out: someone removed since (or a team chat replaced) no longer hears the brand's
        news, and their pending rows are dropped."""
        if not any(r.audience for r in rows):
            return rows
        gone = await self._db.brands.unaddressed(rows)
        if not gone:
            return rows
        log.info("%d message(s) dropped: their recipient no longer hears the brand", len(gone))
        await self._db.outbox.settle(gone, status=OutboxStatus.DROPPED)
        dropped = set(gone)
        return [r for r in rows if r.id not in dropped]

    async def _deliver(self, d: _Delivery) -> None:
        try:
            await self._attempt(d)
        except Exception:
            log.exception("delivery to chat %s failed unexpectedly", d.chat_id)
            await self._db.outbox.retry_later(
                d.ids, due_at=utcnow() + timedelta(seconds=30), error="unexpected error"
            )
        finally:
            self._finished.update(d.ids)
            self._in_flight.difference_update(d.ids)
            self._busy_chats.discard(d.chat_id)
            self._slots.release()
            self._doorbell.ring()

    async def _attempt(self, d: _Delivery) -> None:
        markup = InlineKeyboardMarkup.de_json(_json(d.keyboard), self._bot) if d.keyboard else None
        try:
            message_id = await self._send(d, markup, d.text, ParseMode.HTML)
        except RetryAfter as exc:
            delay = _seconds(exc.retry_after)
            log.warning("flood control on chat %s: retry after %.0fs", d.chat_id, delay)
            self._pacer.block_chat(d.chat_id, time.monotonic() + delay)
            await self._db.outbox.retry_later(
                d.ids, due_at=utcnow() + timedelta(seconds=delay), error="429 flood control"
            )
            return
        except Forbidden as exc:
            log.info("chat %s is unreachable: %s", d.chat_id, exc.message)
            await self._db.outbox.settle(d.ids, status=OutboxStatus.UNREACHABLE, error=exc.message)
            if self._on_unreachable is not None:
                await self._on_unreachable(d.rows)
            return
        except ChatMigrated as exc:
            # A group became a supergroup: its new id is stored and the message goes there.
            new_chat_id = int(exc.new_chat_id)
            if new_chat_id == d.chat_id:  # never so at Telegram; not a reason to loop
                await self._db.outbox.settle(d.ids, status=OutboxStatus.FAILED, error=exc.message)
                return
            log.info("chat %s is now chat %s", d.chat_id, new_chat_id)
            await self._db.brands.migrate_chat(old_chat_id=d.chat_id, new_chat_id=new_chat_id)
            return
        except BadRequest as exc:
            if "not modified" in exc.message:
                await self._db.outbox.settle(
                    d.ids, status=OutboxStatus.SENT, message_id=d.edit_message_id
                )
                return
            if refused_for_form(exc.message) and await self._as_plain(d, markup, exc.message):
                return
            log.error("Telegram refused a message to chat %s: %s", d.chat_id, exc.message)
            await self._db.outbox.settle(d.ids, status=OutboxStatus.FAILED, error=exc.message)
            return
        except (NetworkError, TelegramError) as exc:
            attempts = max(r.attempts for r in d.rows) + 1
            if attempts >= MAX_ATTEMPTS:
                await self._db.outbox.settle(d.ids, status=OutboxStatus.FAILED, error=str(exc))
                return
            delay = min(_BACKOFF_CAP, 0.5 * 2**attempts)
            log.warning("sending to chat %s failed (%s), retry in %.1fs", d.chat_id, exc, delay)
            self._pacer.hold_chat(d.chat_id, time.monotonic() + delay)
            await self._db.outbox.retry_later(
                d.ids, due_at=utcnow() + timedelta(seconds=delay), error=type(exc).__name__
            )
            return
        await self._db.outbox.settle(d.ids, status=OutboxStatus.SENT, message_id=message_id)

    async def _send(
        self,
        d: _Delivery,
        markup: InlineKeyboardMarkup | None,
        text: str,
        parse_mode: ParseMode | None,
    ) -> int:
        """One Telegram call for the delivery; the id of the message sent or edited. Paced by
        the worker itself, so the bot's limiter lets it through and leaves a 429 to us."""
        with self_paced():
            if d.kind == OutboxKind.EDIT_MARKUP and d.edit_message_id is not None:
                await self._bot.edit_message_reply_markup(
                    chat_id=d.chat_id, message_id=d.edit_message_id, reply_markup=None
                )
                return d.edit_message_id
            if d.kind == OutboxKind.EDIT_CAPTION and d.edit_message_id is not None:
                await self._bot.edit_message_caption(
                    chat_id=d.chat_id,
                    message_id=d.edit_message_id,
                    caption=text,
                    parse_mode=parse_mode,
                    reply_markup=markup,
                )
                return d.edit_message_id
            if d.kind == OutboxKind.EDIT and d.edit_message_id is not None:
                await self._bot.edit_message_text(
                    text,
                    chat_id=d.chat_id,
                    message_id=d.edit_message_id,
                    parse_mode=parse_mode,
                    reply_markup=markup,
                    disable_web_page_preview=True,
                )
                return d.edit_message_id
            sent = await self._bot.send_message(
                d.chat_id,
                text,
                parse_mode=parse_mode,
                reply_markup=markup,
                disable_web_page_preview=True,
            )
            return sent.message_id

    async def _as_plain(
        self, d: _Delivery, markup: InlineKeyboardMarkup | None, refusal: str
    ) -> bool:
        """Telegram refused the HTML for its length or its markup: the same words as plain text
        (whole lines, then "…") rather than nothing. False when that is refused as well."""
        limit = (
            MessageLimit.CAPTION_LENGTH
            if d.kind == OutboxKind.EDIT_CAPTION
            else MessageLimit.MAX_TEXT_LENGTH
        )
        log.warning("chat %s: HTML refused (%s), sending plain text", d.chat_id, refusal)
        try:
            message_id = await self._send(d, markup, plain_version(d.text, limit), None)
        except BadRequest as exc:
            log.error("Telegram refused the plain text to chat %s too: %s", d.chat_id, exc.message)
            return False
        except TelegramError as exc:
            # 429, 403 or the network: the whole delivery is tried again later, the same way.
            delay = _seconds(exc.retry_after) if isinstance(exc, RetryAfter) else 5.0
            self._pacer.hold_chat(d.chat_id, time.monotonic() + delay)
            await self._db.outbox.retry_later(
                d.ids, due_at=utcnow() + timedelta(seconds=delay), error=type(exc).__name__
            )
            return True
        await self._db.outbox.settle(d.ids, status=OutboxStatus.SENT, message_id=message_id)
        return True


def _seconds(value: object) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)  # type: ignore[arg-type]


def _json(text: str) -> dict[str, object]:
    import json

    data = json.loads(text)
    return data if isinstance(data, dict) else {}
