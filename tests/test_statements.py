"""SQL statements per Telegram update, counted on the real bot (both engines): each of the
influencer's updates (/start <token>, each check answer, the one that issues the login) runs in
one transaction of at most four statements. The ids of the messages sent are noted behind
(`bot.store.notes`), and an old copy of a step or login still loses its buttons; the callback
uses its login state in one statement.

An SQLAlchemy event listener on the bot's engine counts statements and transactions; a handler in a
group before all of the product's groups marks (in a context variable) the work done while
handling one update, so the delivery worker and the periodic jobs (other tasks) are not counted.
"""

from __future__ import annotations

import contextvars
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from telegram import Update
from telegram.ext import ContextTypes, TypeHandler

from bot.models import Step
from bot.store import Database, Outgoing, StateProblem
from bot.store.steps import NewLogin
from sandbox.telegram import SentMessage
from tests.world import ANNA, MANAGER, World

MAX_STATEMENTS = 4

_update: contextvars.ContextVar[int | None] = contextvars.ContextVar("update", default=None)


@dataclass
class Work:
    statements: list[str] = field(default_factory=list)
    begins: int = 0
    commits: int = 0
    # The statements of each transaction, in order.
    transactions: list[list[str]] = field(default_factory=list)

    def step_transaction(self) -> list[str]:
        """The update's first transaction: the one that moves the step."""
        return self.transactions[0] if self.transactions else []


@dataclass
class Counter:
    per_update: dict[int, Work] = field(default_factory=lambda: defaultdict(Work))
    order: list[int] = field(default_factory=list)

    async def mark(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        _update.set(update.update_id)
        self.order.append(update.update_id)

    def last(self) -> Work:
        return self.per_update[self.order[-1]]


def _count(world: World) -> Counter:
    counter = Counter()
    engine = world.db.engine.sync_engine

    def statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        update_id = _update.get()
        if update_id is not None:
            work = counter.per_update[update_id]
            line = sql.split("\n")[0][:120]
            work.statements.append(line)
            if not work.transactions:
                work.transactions.append([])
            work.transactions[-1].append(line)

    def begin(conn: Any) -> None:
        update_id = _update.get()
        if update_id is not None:
            counter.per_update[update_id].begins += 1
            counter.per_update[update_id].transactions.append([])

    def commit(conn: Any) -> None:
        update_id = _update.get()
        if update_id is not None:
            counter.per_update[update_id].commits += 1

    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "begin", begin)
    sa.event.listen(engine, "commit", commit)
    world.bot.application.add_handler(TypeHandler(Update, counter.mark), group=-1_000)
    return counter


def _check(work: Work, what: str) -> None:
    """The whole update: one transaction of at most four statements."""
    shown = "\n  ".join(work.statements)
    print(f"{what}: {len(work.statements)} statements, {work.begins} transactions\n  {shown}")
    assert len(work.statements) <= MAX_STATEMENTS, f"{what}:\n  {shown}"
    assert work.begins == 1 and work.commits == 1, f"{what}: {work.begins} transactions"


def _check_step(work: Work, what: str) -> None:
    """The step itself: the update's first transaction reads the person and moves the step, with
    its event and the card's refresh, in at most four statements; nothing before it."""
    step = work.step_transaction()
    shown = "\n  ".join(step)
    assert len(step) <= MAX_STATEMENTS, f"{what}:\n  {shown}"
    assert work.commits >= 1
    # The language, from the same work: the person's upsert, or (an answer) the UPDATE itself.
    assert step[0].startswith(("INSERT INTO person", "UPDATE invitation SET")), shown
    assert any(s.startswith("UPDATE invitation SET") for s in step), shown
    assert any(s.startswith("INSERT INTO invitation_event") for s in step), shown
    assert any(s.startswith("INSERT INTO outbox") for s in step), shown  # the card's refresh


async def _walk(world: World, check: Callable[[Work, str], None]) -> None:
    """The influencer's steps with the manager's live card (each step refreshes it)."""
    token = await world.invite("@anna.bakes")
    card = world.telegram.messages(MANAGER.id)[-1]
    counter = _count(world)

    welcome = await world.open_link(ANNA, token)
    assert "Step 1 of 3" in welcome.text and "Brandly" in world.telegram.messages(ANNA.id)[0].text
    check(counter.last(), "/start <token>")
    # The card's refresh was written in that transaction, and reaches the manager.
    opened = await world.telegram.wait_for(MANAGER.id, "step 1 of 3")
    assert opened.message_id == card.message_id and token in opened.text

    linked = await world.answer(ANNA, "Yes")
    assert "Step 2 of 3" in linked.text
    check(counter.last(), "first check answered")
    checked = await world.telegram.wait_for(MANAGER.id, "Step 2 of 3 (Page linked")
    assert checked.message_id == card.message_id

    login = await world.answer(ANNA, "Yes")
    assert "Step 3 of 3" in login.text
    check(counter.last(), "second check answered")


async def test_each_step_moves_in_one_transaction_of_at_most_four_statements(
    world: World,
) -> None:
    await _walk(world, _check_step)


async def test_each_update_is_one_transaction_of_at_most_four_statements(world: World) -> None:
    await _walk(world, _check)


# --- the notes of sent messages, written behind ---------------------------------------------------


def _now(world: World, message: SentMessage) -> SentMessage:
    """The message as the person sees it now (edits applied)."""
    return next(
        m for m in world.telegram.messages(message.chat_id) if m.message_id == message.message_id
    )


def _with_buttons(world: World) -> list[int]:
    return [m.message_id for m in world.telegram.messages(ANNA.id) if m.buttons]


async def _noted_step_message(world: World) -> int | None:
    async with world.db.engine.connect() as conn:
        noted = (await conn.execute(sa.text("SELECT step_message_id FROM invitation"))).scalar()
        return int(noted) if noted is not None else None


async def test_an_old_copy_loses_its_buttons_before_and_after_its_note_is_written(
    world: World,
) -> None:
    """The message carrying a step's buttons is noted behind the update. Shown again before
    that note is written (here: the writer holds its notes), the old copy still loses its
    buttons; after a restart (which writes what was noted), too; and the login shown again
    (/start) takes the buttons off the login message whose note was still waiting."""
    token = await world.invite("@anna.bakes")
    world.db.steps.notes.linger = 3600  # nothing is written behind from here on
    await world.open_link(ANNA, token)
    first = world.telegram.last_message(ANNA.id)
    english = await world.answer(ANNA, "Yes")
    assert "Step 2 of 3" in english.text and english.buttons
    # The step's transaction carried the first question's note along; the second one waits.
    assert await _noted_step_message(world) == first.message_id

    world.telegram.send_text(ANNA, "/language")
    await world.settle()
    await world.answer(ANNA, "Deutsch")
    german = world.telegram.last_message(ANNA.id)
    assert german.text.startswith("Schritt 2 von 3")
    assert _now(world, english).buttons == []
    assert _with_buttons(world) == [german.message_id]
    assert await _noted_step_message(world) == first.message_id  # still not written

    await world.restart()  # the old process writes its notes; the new one knows only those
    assert await _noted_step_message(world) == german.message_id
    world.telegram.send_text(ANNA, "/language")
    await world.settle()
    await world.answer(ANNA, "English")
    again = world.telegram.last_message(ANNA.id)
    assert "Step 2 of 3" in again.text
    assert _now(world, german).buttons == []
    assert _with_buttons(world) == [again.message_id]

    world.db.steps.notes.linger = 3600
    login = await world.answer(ANNA, "Yes")
    assert "Step 3 of 3" in login.text and login.buttons
    url = world.login_url(ANNA)
    world.telegram.send_text(ANNA, "/start")
    await world.settle()
    newer = world.telegram.last_message(ANNA.id)
    assert "Step 3 of 3" in newer.text and newer.message_id != login.message_id
    assert world.login_url(ANNA) == url  # the same login, shown again
    assert _now(world, login).buttons == []
    assert _with_buttons(world) == [newer.message_id]


# --- the callback: its state is used in one statement ---------------------------------------------


async def test_a_login_state_is_used_in_one_statement(db: Database) -> None:
    """The redirect in the browser that opened the login link uses its state with one
    conditional UPDATE, which returns the attempt and its invitation; another browser's uses
    nothing (the page asks to confirm), and a used state is refused."""
    invite, token = await db.invitations.create_invitation(
        handle="anna.bakes", created_by=MANAGER.id, inviter_name="Max", ttl=timedelta(days=1)
    )
    assert invite.id is not None
    await db.steps.open_link(
        token=token, telegram_user_id=ANNA.id, telegram_language="en", card=_none
    )
    step = {"invitation_id": invite.id, "telegram_user_id": ANNA.id, "telegram_language": "en"}
    await db.steps.answer_check(
        **step, from_step=Step.PAGE_PUBLIC, to_step=Step.PAGE_LINKED, detail="", card=_none
    )
    login = NewLogin(state="s" * 43, sealed=None, ttl=timedelta(minutes=5))
    answered = await db.steps.answer_check(
        **step, from_step=Step.PAGE_LINKED, to_step=Step.LOGIN, detail="", card=_none, login=login
    )
    assert answered.ticket is not None and answered.ticket.state == login.state
    await db.logins.bind_browser(attempt_id=answered.ticket.attempt_id, browser_hash="b" * 64)

    statements: list[str] = []

    def statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        statements.append(sql.split("\n")[0][:80])

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", statement)
    assert await db.logins.use_state(login.state, browser_hash="c" * 64) is None
    statements.clear()
    used = await db.logins.use_state(login.state, browser_hash="b" * 64)
    assert isinstance(used, tuple), used
    attempt, invitation = used
    assert attempt.used_at is not None and invitation.id == invite.id
    assert invitation.handle == "anna.bakes" and invitation.step == Step.LOGIN
    assert len(statements) == 1 and statements[0].startswith("UPDATE login_attempt"), statements
    assert await db.logins.use_state(login.state, browser_hash="b" * 64) is StateProblem.USED


def _none(invite: object, owner: object) -> list[Outgoing]:
    return []
