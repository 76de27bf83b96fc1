"""Storage on SQLite and PostgreSQL: hashes only, single use, compare-and-set steps."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory

import bot
from bot.crypto import secret_hash
from bot.models import Invitation, InviteStatus, Step
from bot.store import BindProblem, Bound, Database, Outgoing, StateProblem
from bot.store.db import head_revision
from bot.store.steps import CardOwner

MANAGER = 1001
ALICE = 2001
BOB = 2002


async def _invite(db: Database, ttl: timedelta = timedelta(days=1)) -> tuple[int, str]:
    invite, token = await db.invitations.create_invitation(
        handle="anna.bakes", created_by=MANAGER, inviter_name="Maria", ttl=ttl
    )
    assert invite.id is not None
    return invite.id, token


def _no_card(invite: Invitation, owner: CardOwner) -> list[Outgoing]:
    return []


async def _bind(db: Database, *, token: str, telegram_user_id: int) -> Bound | BindProblem:
    """`/start <token>`'s step (bot.store.steps)."""
    opened = await db.steps.open_link(
        token=token, telegram_user_id=telegram_user_id, telegram_language=None, card=_no_card
    )
    return opened.result


async def _advance(
    db: Database, *, invitation_id: int, telegram_user_id: int, from_step: Step, to_step: Step
) -> bool:
    """A check answered with yes (bot.store.steps)."""
    answered = await db.steps.answer_check(
        invitation_id=invitation_id,
        telegram_user_id=telegram_user_id,
        telegram_language=None,
        from_step=from_step,
        to_step=to_step,
        detail=f"{from_step.value}:yes",
        card=_no_card,
    )
    return answered.moved


async def _raw(db: Database, sql: str) -> list[tuple[object, ...]]:
    async with db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(sa.text(sql))).all()]


async def test_link_token_is_stored_only_as_hash(db: Database) -> None:
    _, token = await _invite(db)
    rows = await _raw(db, "SELECT token_hash, handle, status FROM invitation")
    assert rows == [(secret_hash(token), "anna.bakes", "pending")]
    dump = repr(await _raw(db, "SELECT * FROM invitation")) + repr(
        await _raw(db, "SELECT * FROM invitation_event")
    )
    assert token not in dump


async def test_binding_is_once_and_personal(db: Database) -> None:
    invite_id, token = await _invite(db)
    first = await _bind(db, token=token, telegram_user_id=ALICE)
    assert isinstance(first, Bound) and first.fresh
    assert first.invitation.step == Step.PAGE_PUBLIC
    again = await _bind(db, token=token, telegram_user_id=ALICE)
    assert isinstance(again, Bound) and not again.fresh
    assert await _bind(db, token=token, telegram_user_id=BOB) is BindProblem.TAKEN
    assert await _bind(db, token="nope", telegram_user_id=BOB) is BindProblem.UNKNOWN
    stored = await db.invitations.get_invitation(invite_id)
    assert stored is not None and stored.telegram_user_id == ALICE
    kinds = [e.kind for e in await db.invitations.events(invite_id)]
    assert kinds == ["created", "opened"]


async def test_expired_invitation_cannot_be_bound(db: Database) -> None:
    invite_id, token = await _invite(db, ttl=timedelta(seconds=-1))
    bound = await _bind(db, token=token, telegram_user_id=ALICE)
    assert bound is BindProblem.EXPIRED
    stored = await db.invitations.get_invitation(invite_id)
    assert stored is not None and stored.telegram_user_id is None
    assert stored.status == InviteStatus.PENDING


async def test_concurrent_binds_have_one_winner(db: Database) -> None:
    _, token = await _invite(db)
    results = await asyncio.gather(
        *(_bind(db, token=token, telegram_user_id=3000 + i) for i in range(5))
    )
    winners = [r for r in results if isinstance(r, Bound)]
    assert len(winners) == 1
    assert sum(r is BindProblem.TAKEN for r in results) == 4


async def test_step_is_compare_and_set(db: Database) -> None:
    invite_id, token = await _invite(db)
    await _bind(db, token=token, telegram_user_id=ALICE)
    args = dict(invitation_id=invite_id, from_step=Step.PAGE_PUBLIC, to_step=Step.PAGE_LINKED)
    assert not await _advance(db, telegram_user_id=BOB, **args)
    moves = await asyncio.gather(
        *(_advance(db, telegram_user_id=ALICE, **args) for _ in range(3))
    )
    assert sorted(moves) == [False, False, True]
    stored = await db.invitations.get_invitation(invite_id)
    assert stored is not None and stored.step == Step.PAGE_LINKED


async def test_state_is_single_use_and_hashed(db: Database) -> None:
    invite_id, token = await _invite(db)
    await _bind(db, token=token, telegram_user_id=ALICE)
    for step in (Step.PAGE_PUBLIC, Step.PAGE_LINKED):
        nxt = Step.PAGE_LINKED if step is Step.PAGE_PUBLIC else Step.LOGIN
        assert await _advance(
            db, invitation_id=invite_id, telegram_user_id=ALICE, from_step=step, to_step=nxt
        )
    state = await db.logins.start_login(
        invitation_id=invite_id, telegram_user_id=ALICE, ttl=timedelta(minutes=5), rerequest=False
    )
    assert state is not None
    assert state not in repr(await _raw(db, "SELECT * FROM login_attempt"))
    results = await asyncio.gather(*(db.logins.consume_state(state) for _ in range(4)))
    assert sum(isinstance(r, tuple) for r in results) == 1
    assert sum(r is StateProblem.USED for r in results) == 3
    assert await db.logins.consume_state("forged") is StateProblem.UNKNOWN


async def test_expired_state_is_refused(db: Database) -> None:
    invite_id, token = await _invite(db)
    await _bind(db, token=token, telegram_user_id=ALICE)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE invitation SET step = 'login'"))
    state = await db.logins.start_login(
        invitation_id=invite_id, telegram_user_id=ALICE, ttl=timedelta(seconds=-1), rerequest=False
    )
    assert state is not None
    assert await db.logins.consume_state(state) is StateProblem.EXPIRED


async def test_migrations_are_idempotent(database_url: str) -> None:
    database = Database(database_url)
    try:
        await database.migrate()
        await database.migrate()  # a restart on an existing database
        rows = await _raw(database, "SELECT version_num FROM alembic_version")
        head = ScriptDirectory(str(Path(bot.__file__).parent / "migrations")).get_current_head()
        assert rows == [(head,)]
        assert head_revision() == head  # read without Alembic, for starts at head
    finally:
        await database.dispose()


async def test_a_start_at_head_does_not_load_alembic(database_url: str) -> None:
    """Alembic costs ~12 MB of memory for the life of the process: a database at head is
    recognised without it."""
    database = Database(database_url)
    try:
        await database.migrate()
    finally:
        await database.dispose()
    script = (
        "import asyncio, sys\n"
        "from bot.store import Database\n"
        "async def main():\n"
        "    db = Database(sys.argv[1])\n"
        "    await db.migrate()\n"
        "    await db.dispose()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, database_url, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    assert out.decode().strip() == "[]"


async def test_upgrade_keeps_invitations_made_before_brands(database_url: str) -> None:
    """An existing database at 0003 (no brands yet) upgrades with its invitations intact: they
    join one brand, managed by whoever created them."""
    from alembic import command
    from alembic.config import Config

    database = Database(database_url)

    def to(revision: str) -> object:
        def run(sync_conn: sa.Connection) -> None:
            cfg = Config()
            cfg.set_main_option("script_location", str(Path(bot.__file__).parent / "migrations"))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, revision)

        return run

    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(to("0003"))
            await conn.execute(
                sa.text(
                    "INSERT INTO invitation (token_hash, handle, created_by, inviter_name, status,"
                    " step, expires_at, created_at, updated_at) VALUES ('h', 'anna', 42, 'M',"
                    " 'pending', 'welcome', :t, :t, :t)"
                ),
                {"t": datetime(2026, 1, 1, tzinfo=UTC)},
            )
        await database.migrate()
        assert await _raw(database, "SELECT handle, brand_id FROM invitation") == [("anna", 1)]
        assert await _raw(database, "SELECT telegram_id, brand_id FROM manager") == [(42, 1)]
        assert await _raw(database, "SELECT name FROM brand") == [("Default",)]
    finally:
        await database.dispose()


def test_invitation_tokens_never_look_like_manager_links() -> None:
    # One plain token in 4096 starts with "m-"; 20,000 draws would very likely meet one.
    from bot.crypto import MANAGER_LINK_PREFIX, new_invitation_token

    tokens = [new_invitation_token() for _ in range(20_000)]
    assert not any(t.startswith(MANAGER_LINK_PREFIX) for t in tokens)
    assert all(len(t) <= 64 and t.replace("-", "").replace("_", "").isalnum() for t in tokens)


async def test_a_verdict_for_a_withdrawn_invitation_keeps_nothing(db: Database) -> None:
    """The state was used just before the manager withdrew the invitation."""
    from bot.store import ConnectionRecord, Outgoing

    invite_id, token = await _invite(db)
    await _bind(db, token=token, telegram_user_id=ALICE)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE invitation SET step = 'login'"))
    state = await db.logins.start_login(
        invitation_id=invite_id, telegram_user_id=ALICE, ttl=timedelta(minutes=5), rerequest=False
    )
    assert state is not None
    consumed = await db.logins.consume_state(state)
    assert isinstance(consumed, tuple)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE invitation SET status = 'revoked'"))
    record = ConnectionRecord("fb", "p", "Page", "ig", "anna.bakes", 1, ("x",), None, None, None)
    invite = await db.logins.record_verdict(
        attempt_id=consumed[0].id or 0,
        invitation_id=invite_id,
        outcome="connected",
        connection=record,
        outgoing=[Outgoing(chat_id=ALICE, text="Connected!")],
    )
    assert invite.status == InviteStatus.REVOKED
    assert await _raw(db, "SELECT count(*) FROM connection") == [(0,)]
    assert await _raw(db, "SELECT count(*) FROM outbox") == [(0,)]
    assert await _raw(db, "SELECT outcome FROM login_attempt") == [("withdrawn",)]
