"""Brands, their managers, manager links, and who hears a brand's news."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import col, select

from bot.crypto import new_secret, secret_hash
from bot.models import (
    Brand,
    BrandPaths,
    Manager,
    ManagerLink,
    OutboxAudience,
    OutboxMessage,
    OutboxStatus,
    utcnow,
)
from bot.store.base import Repository


class LinkProblem(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    OTHER_BRAND = "other_brand"  # already a manager of another brand


class Brands(Repository):
    async def create_brand(self, name: str) -> Brand:
        async with self.session() as s:
            brand = Brand(name=name[:128])
            s.add(brand)
            await s.commit()
            return brand

    async def brands(self) -> list[Brand]:
        async with self.session() as s:
            return list(await s.exec(select(Brand).order_by(col(Brand.id))))

    async def brand(self, brand_id: int) -> Brand | None:
        async with self.session() as s:
            return await s.get(Brand, brand_id)

    async def brand_named(self, name: str) -> Brand | None:
        """The first brand with this name, whatever its letters' case (and surrounding spaces)."""
        wanted = name.strip()[:128].casefold()
        for brand in await self.brands():
            if brand.name.strip().casefold() == wanted:
                return brand
        return None

    async def set_login_paths(self, brand_id: int, paths: BrandPaths) -> Brand | None:
        """Which ways in the brand's influencers may use (`/paths`); None: no such brand."""
        async with self.session() as s:
            brand = await s.get(Brand, brand_id)
            if brand is None:
                return None
            brand.login_paths = paths.value
            s.add(brand)
            await s.commit()
            await s.refresh(brand)
            return brand

    async def set_team_chat(self, brand_id: int, chat_id: int | None) -> None:
        async with self.session() as s:
            brand = await s.get(Brand, brand_id)
            if brand is not None:
                brand.team_chat_id = chat_id
                s.add(brand)
                await s.commit()

    async def manager(self, telegram_id: int) -> Manager | None:
        async with self.session() as s:
            return await s.get(Manager, telegram_id)

    async def managers(self, brand_id: int) -> list[Manager]:
        async with self.session() as s:
            rows = await s.exec(
                select(Manager)
                .where(Manager.brand_id == brand_id)
                .order_by(col(Manager.created_at))
            )
            return list(rows)

    async def add_manager(self, *, brand_id: int, telegram_id: int, name: str) -> Manager:
        async with self.session() as s:
            existing = await s.get(Manager, telegram_id)
            if existing is not None:
                return existing
            manager = Manager(telegram_id=telegram_id, brand_id=brand_id, name=name[:128])
            s.add(manager)
            try:
                await s.commit()
            except sa.exc.IntegrityError:
                await s.rollback()
                found = await s.get(Manager, telegram_id)
                assert found is not None
                return found
            return manager

    async def remove_manager(self, *, brand_id: int, telegram_id: int) -> Manager | None:
        """The manager removed from the brand, or None if they were not one of its managers."""
        async with self.session() as s:
            found = (
                await s.exec(
                    select(Manager).where(
                        col(Manager.telegram_id) == telegram_id, col(Manager.brand_id) == brand_id
                    )
                )
            ).first()
            if found is None:
                return None
            result = await s.exec(
                sa.delete(Manager).where(
                    col(Manager.telegram_id) == telegram_id, col(Manager.brand_id) == brand_id
                )
            )
            await s.commit()
            return found if result.rowcount else None

    # --- who hears a brand's news (see OutboxAudience) -------------------------------------------

    async def unaddressed(self, rows: Sequence[OutboxMessage]) -> list[int]:
        """Ids of the rows whose audience no longer holds: the manager was removed from the
        brand, or the chat is no longer the brand's team chat."""
        brand_ids = {r.brand_id for r in rows if r.audience and r.brand_id is not None}
        if not brand_ids:
            return []
        async with self.session() as s:
            members = set(
                (
                    await s.exec(
                        select(Manager.brand_id, Manager.telegram_id).where(
                            col(Manager.brand_id).in_(brand_ids)
                        )
                    )
                ).all()
            )
            teams = set(
                (
                    await s.exec(
                        select(Brand.id, Brand.team_chat_id).where(col(Brand.id).in_(brand_ids))
                    )
                ).all()
            )
        gone: list[int] = []
        for r in rows:
            if r.id is None or not r.audience:
                continue
            if r.audience == OutboxAudience.TEAM:
                holds = (r.brand_id, r.chat_id) in teams
            else:
                holds = (r.brand_id, r.manager_id) in members
            if not holds:
                gone.append(r.id)
        return gone

    async def unregister_team_chat(self, chat_id: int) -> list[int]:
        """The bot can no longer write to this group: it stops being any brand's team chat.
        Returns the brands it was the team chat of (none if another delivery got there first)."""
        async with self.session() as s:
            ended = await s.exec(
                sa.update(Brand)
                .where(col(Brand.team_chat_id) == chat_id)
                .values(team_chat_id=None)
                .returning(col(Brand.id))
            )
            brand_ids = sorted(row[0] for row in ended.all())
            await s.commit()
            return brand_ids

    async def migrate_chat(self, *, old_chat_id: int, new_chat_id: int) -> None:
        """A group became a supergroup with a new id: the team chat moves, and so does
        everything still waiting to be delivered there (due now)."""
        async with self.session() as s:
            await s.exec(
                sa.update(Brand)
                .where(col(Brand.team_chat_id) == old_chat_id)
                .values(team_chat_id=new_chat_id)
            )
            await s.exec(
                sa.update(OutboxMessage)
                .where(
                    col(OutboxMessage.chat_id) == old_chat_id,
                    col(OutboxMessage.status) == OutboxStatus.PENDING,
                )
                .values(chat_id=new_chat_id, due_at=utcnow())
            )
            await s.commit()

    async def create_manager_link(self, *, brand_id: int, created_by: int, ttl: timedelta) -> str:
        token = new_secret()
        async with self.session() as s:
            s.add(
                ManagerLink(
                    token_hash=secret_hash(token),
                    brand_id=brand_id,
                    created_by=created_by,
                    expires_at=utcnow() + ttl,
                )
            )
            await s.commit()
        return token

    async def accept_manager_link(
        self, *, token: str, telegram_id: int, name: str
    ) -> Manager | LinkProblem:
        """One use only: the conditional UPDATE decides who got it."""
        now = utcnow()
        token_hash = secret_hash(token)
        async with self.session() as s:
            link = (
                await s.exec(select(ManagerLink).where(ManagerLink.token_hash == token_hash))
            ).first()
            if link is None:
                return LinkProblem.UNKNOWN
            current = await s.get(Manager, telegram_id)
            if current is not None and current.brand_id != link.brand_id:
                return LinkProblem.OTHER_BRAND
            result = await s.exec(
                sa.update(ManagerLink)
                .where(
                    col(ManagerLink.id) == link.id,
                    col(ManagerLink.used_at).is_(None),
                    col(ManagerLink.expires_at) > now,
                )
                .values(used_at=now, used_by=telegram_id)
            )
            if result.rowcount != 1:
                return LinkProblem.USED if link.used_at is not None else LinkProblem.EXPIRED
            if current is None:
                current = Manager(telegram_id=telegram_id, brand_id=link.brand_id, name=name[:128])
                s.add(current)
            await s.commit()
            return current
