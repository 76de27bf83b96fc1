"""Telegram update ids seen (webhook redeliveries are answered once)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col

from bot.models import (
    TelegramUpdate,
    utcnow,
)
from bot.store.base import Repository


class Updates(Repository):
    async def claim_update(self, update_id: int) -> bool:
        """True the first time an update id is seen (by any replica), False for a redelivery."""
        async with self.session() as s:
            s.add(TelegramUpdate(update_id=update_id, received_at=utcnow()))
            try:
                await s.commit()
            except sa.exc.IntegrityError:
                return False
            return True

    async def forget_updates_before(self, cutoff: datetime) -> int:
        """Telegram redelivers for at most a day; older ids need not be kept."""
        async with self.session() as s:
            result = await s.exec(
                sa.delete(TelegramUpdate).where(col(TelegramUpdate.received_at) < cutoff)
            )
            await s.commit()
            return int(result.rowcount or 0)


