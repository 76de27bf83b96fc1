"""What the operator's /metrics reads at scrape time: the outbox's backlog and the connections by
status, in one transaction of two statements (`bot.metrics`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Connection, OutboxMessage, OutboxStatus


@dataclass(frozen=True)
class Reading:
    outbox_waiting: int
    oldest_waiting_since: datetime | None
    connections: dict[str, int] = field(default_factory=dict)


class Gauges:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def read(self) -> Reading:
        outbox = sa.inspect(OutboxMessage).local_table
        connection = sa.inspect(Connection).local_table
        async with self._sessions() as s, s.begin():
            conn = await s.connection()
            waiting, oldest = (
                await conn.execute(
                    sa.select(sa.func.count(), sa.func.min(outbox.c.created_at)).where(
                        outbox.c.status == OutboxStatus.PENDING
                    )
                )
            ).one()
            by_status = (
                await conn.execute(
                    sa.select(connection.c.status, sa.func.count()).group_by(connection.c.status)
                )
            ).all()
        return Reading(
            outbox_waiting=int(waiting),
            oldest_waiting_since=_utc(oldest),
            connections={str(status): int(count) for status, count in by_status},
        )


def _utc(value: object) -> datetime | None:
    """MIN() over a UTC column comes back naive from SQLite: read it as UTC, like the column."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
