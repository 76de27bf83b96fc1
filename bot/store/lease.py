"""The leader lease: one process at a time delivers the outbox and runs periodic jobs."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.db import Database


class LeaderLease:
    """One process at a time delivers the outbox and runs periodic jobs.

    On PostgreSQL: a session-level advisory lock held on a dedicated connection. If the process
    dies, its connection closes, the lock is released, and another replica's `acquire` succeeds.
    SQLite serves one process, which is always the leader.
    """

    KEY = 0x436F_6E6E_6563  # "Connec"

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: AsyncConnection | None = None
        self._sqlite = db.url.startswith("sqlite")
        self.held = False

    async def acquire(self) -> bool:
        """Become (or stay) the leader; cheap to call before every round."""
        if self._sqlite:
            self.held = True
            return True
        if self._conn is not None:
            try:
                await self._conn.execute(sa.text("SELECT 1"))
                await self._conn.commit()
                return True
            except Exception:
                await self.release()  # the connection died, and the lock with it
        conn = await self._db.engine.connect()
        try:
            got = (
                await conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.KEY})
            ).scalar()
            await conn.commit()
        except BaseException:
            await conn.close()  # back to the pool (or discarded), not left checked out
            raise
        if got:
            self._conn, self.held = conn, True
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        self.held = False
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.KEY})
            await conn.commit()
        except Exception:
            pass  # closing the connection releases it anyway
        finally:
            await conn.close()


