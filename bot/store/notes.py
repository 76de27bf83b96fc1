"""Notes written behind: which message carries a step's or a login's buttons, and the Telegram
language a person was last seen with.

A message's id is known only once Telegram has answered, after the step's transaction; noting it
there would cost each update a second transaction. So the handlers note it here, in memory, and
one long-lived task (`start`, by the composition root, outside any update) writes what gathered
in one transaction of at most one statement per kind of note; `stop` writes the rest.

Nothing depends on a note for correctness: a note lost (the process died before writing it)
only leaves an older copy of a step or login with its buttons, and those buttons already answer
correctly when pressed (the step and the login state live in the database). To keep old copies
from keeping their buttons in the ordinary case:

- Telegram numbers the messages of a chat in increasing order, and all the step messages of an
  invitation are in the influencer's chat: the newest copy is the one with the highest id. Every
  write keeps the higher id (a late write never replaces a newer note), and `step_message` tells
  the newest this process noted, written or not; the caller takes the higher of that and the
  database's.
- The step's own transaction carries the invitation's newest noted message along in its
  UPDATE (no statement more), so a quick next tap, even on another replica, sees it.
- Whoever reads the login buttons from the database (a new login link, a verdict) calls `flush`
  first.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import OrderedDict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Invitation, LoginAttempt, Person, utcnow

log = logging.getLogger(__name__)

# How long the writer lets notes gather before writing them (a busy bot writes many at once).
LINGER_SECONDS = 0.02
# The newest step message noted per invitation, kept for this many invitations (a hint: the
# database has every note once written).
_REMEMBERED = 4096
_RETRY_SECONDS = 1.0

_invitations = Invitation.__table__  # type: ignore[attr-defined]
_attempts = LoginAttempt.__table__  # type: ignore[attr-defined]


def higher(column: Any, message_id: Any) -> Any:
    """SQL: `message_id` unless the column holds a higher (newer) one already."""
    return sa.case((sa.or_(column.is_(None), column < message_id), message_id), else_=column)


class NoteWriter:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, linger: float = LINGER_SECONDS
    ) -> None:
        self._sessions = sessions
        self.linger = linger
        self._steps: dict[int, int] = {}  # invitation id -> step message id, to write
        self._buttons: dict[int, tuple[int, int]] = {}  # attempt id -> (chat, message), to write
        self._languages: dict[int, str | None] = {}  # person -> Telegram language, to write
        self._newest: OrderedDict[int, int] = OrderedDict()  # invitation -> newest step message
        self._due = asyncio.Event()
        self._lock = asyncio.Lock()  # one write at a time: `flush` returns when all is written
        self._task: asyncio.Task[None] | None = None

    # --- noting --------------------------------------------------------------------------

    def note_step_message(
        self, invitation_id: int, message_id: int, *, stored: int | None
    ) -> int | None:
        """The message now carrying the step's buttons. Returns the one that carried them
        before (its buttons are to be taken off), if another: the newer of what this process
        noted and what the database had (`stored`, as the caller read it)."""
        known = [m for m in (self._newest.get(invitation_id), stored) if m is not None]
        before = max(known) if known else None
        if before is not None and before >= message_id:
            return None  # an older message shown late: the newer one keeps the buttons
        self._remember(invitation_id, message_id)
        self._steps[invitation_id] = message_id
        self._due.set()
        return before

    def note_login_button(self, attempt_id: int, chat_id: int, message_id: int) -> None:
        """The message now carrying the login button of this attempt."""
        known = self._buttons.get(attempt_id)
        if known is None or known[1] < message_id:
            self._buttons[attempt_id] = (chat_id, message_id)
            self._due.set()

    def note_telegram_language(self, telegram_id: int, telegram_language: str | None) -> None:
        """The Telegram language the person was seen with (their row is made if missing)."""
        self._languages[telegram_id] = telegram_language
        self._due.set()

    def step_message(self, invitation_id: int) -> int | None:
        """The newest message this process noted as carrying the invitation's step buttons
        (written or not)."""
        return self._newest.get(invitation_id)

    def step_written(self, invitation_id: int, message_id: int) -> None:
        """A step's transaction wrote this note along with the step: nothing left to write."""
        if self._steps.get(invitation_id) == message_id:
            del self._steps[invitation_id]

    def _remember(self, invitation_id: int, message_id: int) -> None:
        self._newest[invitation_id] = message_id
        self._newest.move_to_end(invitation_id)
        while len(self._newest) > _REMEMBERED:
            self._newest.popitem(last=False)

    # --- writing -------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write every note taken so far (one transaction; nothing when there is none). On
        return, notes taken before the call are in the database."""
        async with self._lock:
            steps, buttons, languages = self._steps, self._buttons, self._languages
            if not (steps or buttons or languages):
                return
            self._steps, self._buttons, self._languages = {}, {}, {}
            try:
                await self._write(steps, buttons, languages)
            except BaseException:
                self._put_back(steps, buttons, languages)
                raise

    async def _write(
        self,
        steps: dict[int, int],
        buttons: dict[int, tuple[int, int]],
        languages: dict[int, str | None],
    ) -> None:
        async with self._sessions() as s:
            conn = await s.connection()
            if steps:
                await conn.execute(
                    sa.update(_invitations)
                    .where(_invitations.c.id == sa.bindparam("b_id"))
                    .values(
                        step_message_id=higher(
                            _invitations.c.step_message_id, sa.bindparam("b_message")
                        )
                    ),
                    [{"b_id": i, "b_message": m} for i, m in steps.items()],
                )
            if buttons:
                message: Any = sa.bindparam("b_message")
                newer = sa.or_(
                    _attempts.c.button_message_id.is_(None),
                    _attempts.c.button_message_id < message,
                )
                await conn.execute(
                    sa.update(_attempts)
                    .where(_attempts.c.id == sa.bindparam("b_id"), newer)
                    .values(button_chat_id=sa.bindparam("b_chat"), button_message_id=message),
                    [{"b_id": a, "b_chat": c, "b_message": m} for a, (c, m) in buttons.items()],
                )
            if languages:
                dialect = s.get_bind().dialect.name
                insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
                now = utcnow()
                rows = [
                    {"telegram_id": p, "telegram_language": lang, "created_at": now}
                    for p, lang in languages.items()
                ]
                stmt = insert(Person).values(rows)
                await conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["telegram_id"],
                        set_={"telegram_language": stmt.excluded.telegram_language},
                    )
                )
            await s.commit()

    def _put_back(
        self,
        steps: dict[int, int],
        buttons: dict[int, tuple[int, int]],
        languages: dict[int, str | None],
    ) -> None:
        """Notes not written go back, unless a newer one of the same thing came meanwhile."""
        for invitation_id, message_id in steps.items():
            if self._steps.get(invitation_id, 0) < message_id:
                self._steps[invitation_id] = message_id
        for attempt_id, carrier in buttons.items():
            known = self._buttons.get(attempt_id)
            if known is None or known[1] < carrier[1]:
                self._buttons[attempt_id] = carrier
        for telegram_id, language in languages.items():
            self._languages.setdefault(telegram_id, language)
        self._due.set()

    # --- the writer ----------------------------------------------------------------------

    def start(self) -> None:
        """The writer: one task for the life of the app, in a context of its own (not an
        update's)."""
        if self._task is None:
            self._task = asyncio.create_task(
                self._run(), name="message-notes", context=contextvars.Context()
            )

    async def stop(self) -> None:
        """Stop the writer and write what is left (best effort: the database may be gone)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:
            await self.flush()
        except Exception as exc:
            log.warning("message notes left unwritten: %s", type(exc).__name__)

    async def _run(self) -> None:
        while True:
            await self._due.wait()
            if self.linger:
                await asyncio.sleep(self.linger)
            self._due.clear()
            try:
                await self.flush()
            except Exception as exc:
                log.warning("message notes not written yet: %s", type(exc).__name__)
                await asyncio.sleep(_RETRY_SECONDS)


__all__ = ["LINGER_SECONDS", "NoteWriter", "higher"]
