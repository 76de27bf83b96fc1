"""Revocations at Facebook still to be confirmed (the tokens waiting, encrypted)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from bot.models import (
    Revocation,
    utcnow,
)
from bot.store.base import Repository
from bot.store.outbox import Outgoing, enqueue_in


class RevocationQueue(Repository):
    # --- revocations at Facebook still to be confirmed ------------------------------------------

    async def queue_revocation(
        self, *, token_encrypted: str, invitation_id: int | None, requested_by: int | None
    ) -> Revocation:
        async with self.session() as s:
            row = Revocation(
                invitation_id=invitation_id,
                requested_by=requested_by,
                token_encrypted=token_encrypted,
            )
            s.add(row)
            await s.commit()
            return row

    async def pending_revocations(self, invitation_id: int) -> list[Revocation]:
        async with self.session() as s:
            rows = await s.exec(
                select(Revocation)
                .where(Revocation.invitation_id == invitation_id)
                .order_by(col(Revocation.id))
            )
            return list(rows)

    async def due_revocations(self, *, now: datetime, limit: int) -> list[Revocation]:
        async with self.session() as s:
            rows = await s.exec(
                select(Revocation)
                .where(col(Revocation.next_try_at) <= now)
                .order_by(col(Revocation.next_try_at), col(Revocation.id))
                .limit(limit)
            )
            return list(rows)

    async def revocation_confirmed(
        self, *, revocation_id: int, outgoing: Sequence[Outgoing]
    ) -> bool:
        """Facebook confirmed: the row and its token go, and the notices are queued, once (the
        conditional DELETE decides when the job and a manager's /revoke both got there)."""

        async with self.session() as s:
            result = await s.exec(
                sa.delete(Revocation).where(
                    col(Revocation.id) == revocation_id
                )
            )
            if result.rowcount != 1:
                await s.rollback()
                return False
            enqueue_in(s, outgoing, utcnow())
            await s.commit()
            return True

    async def revocation_failed(
        self, *, revocation_id: int, error: str, retry_in: Callable[[int], timedelta]
    ) -> int:
        """One more failed attempt; the next one is due after `retry_in(attempts)`. Returns the
        number of attempts so far (0: the row is gone)."""
        async with self.session() as s:
            row = await s.get(Revocation, revocation_id, with_for_update=True)
            if row is None:
                return 0
            row.attempts += 1
            row.last_error = error[:200]
            row.next_try_at = utcnow() + retry_in(row.attempts)
            s.add(row)
            await s.commit()
            return row.attempts

