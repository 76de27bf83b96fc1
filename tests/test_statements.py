"""SQL statements per Telegram update, counted on the real bot (both engines): the influencer's
steps each run in one transaction of at most four statements.

An SQLAlchemy event listener on the bot's engine counts statements and transactions; a handler in a
group before all of the product's groups marks (in a context variable) the work done while
handling one update, so the delivery worker and the periodic jobs (other tasks) are not counted.
"""

from __future__ import annotations

import contextvars
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from telegram import Update
from telegram.ext import ContextTypes, TypeHandler

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
    assert step[0].startswith("INSERT INTO person"), shown  # the language, from the same work
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


@pytest.mark.xfail(
    strict=True,
    reason="after the step's transaction, the step's new message is noted "
    "(Invitations.set_step_message: 2 statements, a 2nd transaction; /start <token> and the "
    "first check: 6 statements, 2 transactions), and the check leading to the login issues "
    "the login state and notes its button in further transactions (18 statements, 7)",
)
async def test_each_update_is_one_transaction_of_at_most_four_statements(world: World) -> None:
    await _walk(world, _check)
