"""The outbox: messages written in the same transaction as the change causing them, delivered
later by the leader's delivery worker."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import OutboxAudience, OutboxKind, OutboxMessage, OutboxStatus, utcnow
from bot.store.base import Repository


@dataclass(frozen=True)
class Outgoing:
    """A message to write to the outbox in the same transaction as the event causing it."""

    chat_id: int
    text: str
    keyboard: str | None = None  # InlineKeyboardMarkup as JSON
    kind: OutboxKind = OutboxKind.SEND
    edit_message_id: int | None = None
    invitation_id: int | None = None
    delay: timedelta = timedelta(0)  # lets notices gather, to go out combined
    # For a brand's people: delivered only while this still holds (see OutboxAudience).
    audience: OutboxAudience | None = None
    brand_id: int | None = None
    manager_id: int | None = None




def enqueue_in(s: AsyncSession, outgoing: Sequence[Outgoing], now: datetime) -> None:
    """Add outbox rows to a transaction that is about to commit an event."""
    for o in outgoing:
        s.add(
            OutboxMessage(
                chat_id=o.chat_id,
                kind=o.kind,
                text=o.text,
                keyboard=o.keyboard,
                edit_message_id=o.edit_message_id,
                invitation_id=o.invitation_id,
                due_at=now + o.delay,
                created_at=now,
                audience=o.audience,
                brand_id=o.brand_id,
                manager_id=o.manager_id,
            )
        )




async def drop_brand_notices(
    s: AsyncSession, invitation_id: int, *, due_after: datetime | None = None
) -> int:
    """Notices about an invitation still waiting for the brand's people (a breakage in the
    next digest, say), dropped in `s` because they are moot now: the invitation was withdrawn,
    or (`due_after`: only those not due yet) the breakage healed before the digest. Returns
    how many were dropped."""
    query = sa.update(OutboxMessage).where(
        col(OutboxMessage.invitation_id) == invitation_id,
        col(OutboxMessage.status) == OutboxStatus.PENDING,
        col(OutboxMessage.kind) == OutboxKind.NOTICE,
        col(OutboxMessage.audience).is_not(None),
    )
    if due_after is not None:
        query = query.where(col(OutboxMessage.due_at) > due_after)
    dropped = await s.exec(query.values(status=OutboxStatus.DROPPED))
    return int(dropped.rowcount or 0)


class Outbox(Repository):
    async def enqueue(self, outgoing: Sequence[Outgoing]) -> None:
        async with self.session() as s:
            enqueue_in(s, outgoing, utcnow())
            await s.commit()

    async def due_messages(self, *, limit: int) -> list[OutboxMessage]:
        """Pending rows that are due, plus every other pending notice to a chat that has a due
        notice (those can ride along in the same combined message)."""
        async with self.session() as s:
            due = list(
                await s.exec(
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.status == OutboxStatus.PENDING,
                        col(OutboxMessage.due_at) <= utcnow(),
                    )
                    .order_by(col(OutboxMessage.id))
                    .limit(limit)
                )
            )
            chats = {r.chat_id for r in due if r.kind == OutboxKind.NOTICE}
            if not chats:
                return due
            seen = {r.id for r in due}
            riders = await s.exec(
                select(OutboxMessage)
                .where(
                    OutboxMessage.status == OutboxStatus.PENDING,
                    OutboxMessage.kind == OutboxKind.NOTICE,
                    col(OutboxMessage.chat_id).in_(chats),
                )
                .order_by(col(OutboxMessage.id))
                .limit(limit)
            )
            extra = [r for r in riders if r.id not in seen]
            return sorted(due + extra, key=lambda r: r.id or 0)

    async def next_due_at(self, *, besides: Collection[int] = ()) -> datetime | None:
        """When the next pending row is due, leaving out the chats in `besides` (the delivery
        worker knows when those are ready)."""
        query = select(sa.func.min(OutboxMessage.due_at)).where(
            OutboxMessage.status == OutboxStatus.PENDING
        )
        if besides:
            query = query.where(col(OutboxMessage.chat_id).not_in(besides))
        async with self.session() as s:
            return (await s.exec(query)).one()

    async def settle(
        self,
        ids: Sequence[int],
        *,
        status: OutboxStatus,
        message_id: int | None = None,
        error: str | None = None,
    ) -> None:
        """Final state of outbox rows (sent, superseded, unreachable, failed)."""
        if not ids:
            return
        now = utcnow()
        async with self.session() as s:
            await s.exec(
                sa.update(OutboxMessage)
                .where(col(OutboxMessage.id).in_(ids))
                .values(
                    status=status,
                    message_id=message_id,
                    sent_at=now if status == OutboxStatus.SENT else None,
                    last_error=error[:200] if error else None,
                )
            )
            await s.commit()

    async def retry_later(self, ids: Sequence[int], *, due_at: datetime, error: str) -> None:
        async with self.session() as s:
            await s.exec(
                sa.update(OutboxMessage)
                .where(col(OutboxMessage.id).in_(ids))
                .values(
                    due_at=due_at,
                    attempts=OutboxMessage.attempts + 1,
                    last_error=error[:200],
                )
            )
            await s.commit()

    async def prune_outbox(self, *, before: datetime) -> int:
        """Delivered messages quote names and numbers: keep them only as long as useful."""
        async with self.session() as s:
            result = await s.exec(
                sa.delete(OutboxMessage).where(
                    col(OutboxMessage.status) != OutboxStatus.PENDING,
                    col(OutboxMessage.created_at) < before,
                )
            )
            await s.commit()
            return int(result.rowcount or 0)

    async def rows(self) -> list[OutboxMessage]:
        async with self.session() as s:
            return list(await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))

