"""The database: one engine and its sessions, the migrations, and the store's repositories
composed around them (`db.invitations`, `db.outbox`, ...). Each repository method is one
transaction; a step that must change several things at once does it in one method."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store.audience import Audiences
from bot.store.brands import Brands
from bot.store.console import BrandInvitations
from bot.store.gauges import Gauges
from bot.store.invitations import Invitations
from bot.store.logins import Logins
from bot.store.outbox import Outbox
from bot.store.people import People
from bot.store.privacy import Privacy
from bot.store.revocations import RevocationQueue
from bot.store.steps import Steps
from bot.store.updates import Updates

_MIGRATIONS = Path(__file__).parent.parent / "migrations"


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
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
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

    def session(self) -> AsyncSession:
        return self._sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits when the block ends (rolls back on an error)."""
        async with self._sessions() as s, s.begin():
            yield s

    async def migrate(self) -> None:
        """Apply Alembic migrations up to head on this engine's database."""

        def upgrade(sync_conn: sa.Connection) -> None:
            cfg = Config()
            cfg.set_main_option("script_location", str(_MIGRATIONS))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)

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
