"""Every row of every table, to show that a request changed nothing."""

from __future__ import annotations

import sqlalchemy as sa

from bot.store import Database

Snapshot = dict[str, list[tuple[object, ...]]]


async def snapshot(db: Database, *, ignore: frozenset[str] = frozenset()) -> Snapshot:
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        tables: Snapshot = {}
        for name in sorted(set(names) - ignore):
            rows = (await conn.execute(sa.text(f'SELECT * FROM "{name}"'))).all()
            tables[name] = sorted((tuple(row) for row in rows), key=repr)
        return tables


async def delivered(db: Database, timeout: float = 15.0) -> None:  # noqa: ASYNC109
    """Until the outbox has nothing pending: a snapshot taken then stays still."""
    import asyncio

    async with asyncio.timeout(timeout):
        while any(r.status == "pending" for r in await db.outbox.rows()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
