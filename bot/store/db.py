"""The database: one engine and its sessions, the migrations, and the store's repositories
composed around them (`db.invitations`, `db.outbox`, ...). Each repository method is one
transaction; a step that must change several things at once does it in one method."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store.api_keys import ApiKeys
from bot.store.audience import Audiences
from bot.store.brands import Brands
from bot.store.console import BrandInvitations
from bot.store.gauges import Gauges
from bot.store.health import Health
from bot.store.invitations import Invitations
from bot.store.logins import Logins
from bot.store.outbox import Outbox
from bot.store.people import People
from bot.store.privacy import Privacy
from bot.store.profiles import Profiles
from bot.store.revocations import RevocationQueue
from bot.store.steps import Steps
from bot.store.updates import Updates
from bot.store.webhooks import Webhooks, WebhookSession

_MIGRATIONS = Path(__file__).parent.parent / "migrations"


_REVISION = re.compile(r"""^(down_)?revision(?:\s*:\s*[^=]+)?\s*=\s*['"]?([\w-]+)""", re.MULTILINE)


@functools.cache
def head_revision() -> str:
    """The newest migration's revision, read from the scripts' `revision` and `down_revision`
    lines (the one no other script revises), without importing Alembic."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for script in (_MIGRATIONS / "versions").glob("*.py"):
        for down, value in _REVISION.findall(script.read_text(encoding="utf-8")):
            (revised if down else revisions).add(value)
    heads = revisions - revised
    if len(heads) != 1:
        raise RuntimeError(f"migrations: expected one head, found {sorted(heads)}")
    return heads.pop()


def _sqlite_write_ahead_log(dbapi_connection: Any, _record: object) -> None:
    """SQLite in WAL mode: readers never wait for a writer (nor a writer's commit for them), and
    a commit appends to the log instead of syncing the whole journal to disk, so a slow disk
    does not stall every handler behind one fsync. NORMAL is durable across crashes of the
    process; only a power cut can lose the last commits, never corrupt the file."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            # One writer at a time: wait for the lock instead of failing with "database is locked".
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, echo=echo, **kwargs)
        if url.startswith("sqlite") and ":memory:" not in url:
            sa.event.listen(self.engine.sync_engine, "connect", _sqlite_write_ahead_log)
        # WebhookSession: every reported invitation event gets its webhook delivery row in the
        # same flush (`bot.store.webhooks`).
        self._sessions = async_sessionmaker(
            self.engine,
            class_=AsyncSession,
            sync_session_class=WebhookSession,
            expire_on_commit=False,
        )
        self.people = People(self._sessions)
        self.invitations = Invitations(self._sessions)
        self.logins = Logins(self._sessions)
        self.outbox = Outbox(self._sessions)
        self.updates = Updates(self._sessions)
        self.brands = Brands(self._sessions)
        self.console = BrandInvitations(self._sessions)
        self.revocations = RevocationQueue(self._sessions)
        self.privacy = Privacy(self._sessions)
        self.steps = Steps(self._sessions)
        self.gauges = Gauges(self._sessions)
        self.audiences = Audiences(self._sessions)
        self.health = Health(self._sessions)
        self.webhooks = Webhooks(self._sessions)
        self.profiles = Profiles(self._sessions)
        self.api_keys = ApiKeys(self._sessions)

    def session(self) -> AsyncSession:
        return self._sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits when the block ends (rolls back on an error)."""
        async with self._sessions() as s, s.begin():
            yield s

    async def migrate(self) -> None:
        """Apply Alembic migrations up to head on this engine's database.

        A database already at head (every start but the first after an upgrade) is recognised
        without Alembic: importing it, its script directory and Mako costs ~12 MB of resident
        memory for the whole life of the process (docs/benchmarks.md, memory)."""
        if await self._revision() == head_revision():
            return
        from alembic import command
        from alembic.config import Config

        def upgrade(sync_conn: sa.Connection) -> None:
            cfg = Config()
            cfg.set_main_option("script_location", str(_MIGRATIONS))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)

    async def _revision(self) -> str | None:
        """The revision the database is at; None for a new one (no alembic_version yet)."""
        try:
            async with self.engine.connect() as conn:
                query = sa.text("SELECT version_num FROM alembic_version")
                rows = (await conn.execute(query)).all()
        except sa.exc.DBAPIError:
            return None
        return str(rows[0][0]) if len(rows) == 1 else None

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(2):
                async with self.engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:
            return False
