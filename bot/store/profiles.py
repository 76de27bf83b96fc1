"""What the brand sees (issue 12): the cached profile snapshots, and which connection a manager or
an influencer may look at. `db.profiles` of the store (`bot.store.db.Database`).

A snapshot belongs to its connection and goes with it: `forget_figures` is called in every
transaction that ends a connection (revoke, app removal, a breakage that disconnects it) or
deletes it (/forget, Meta's data deletion).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select, SelectOfScalar

from bot.models import (
    Brand,
    Connection,
    ConnectionStatus,
    Invitation,
    InviteStatus,
    ProfileSnapshot,
)
from bot.store.base import Repository

ColumnsOrIds = SelectOfScalar[int] | SelectOfScalar[None] | list[int]


@dataclass(frozen=True)
class Viewed:
    """A connected invitation someone may look at, with its connection and brand."""

    invitation: Invitation
    connection: Connection
    brand_name: str


@dataclass(frozen=True)
class Figures:
    """A snapshot's headline figures (for /export and the read API)."""

    fetched_at: datetime
    followers_count: int | None
    reach_30d: int | None
    engagement_per_mille: int | None


async def forget_figures(s: AsyncSession, connections: ColumnsOrIds) -> None:
    """Delete the snapshots of these connections (ids, or a select of ids) in `s`."""
    await s.exec(
        sa.delete(ProfileSnapshot).where(col(ProfileSnapshot.connection_id).in_(connections))
    )


def _live() -> Select[Invitation, Connection, str]:
    """Connected invitations with their live connection and their brand's name."""
    return (
        select(Invitation, Connection, Brand.name)
        .join(Connection, col(Connection.invitation_id) == col(Invitation.id))
        .join(Brand, col(Brand.id) == col(Invitation.brand_id), isouter=True)
        .where(
            col(Invitation.status) == InviteStatus.CONNECTED,
            col(Connection.status) == ConnectionStatus.ACTIVE,
        )
    )


class Profiles(Repository):
    async def connected(self, invitation_id: int) -> Viewed | None:
        """The invitation with its live connection, or None when it has none."""
        async with self.session() as s:
            row = (await s.exec(_live().where(col(Invitation.id) == invitation_id))).first()
        if row is None:
            return None
        invitation, connection, brand_name = row
        return Viewed(invitation, connection, brand_name or "")

    async def connected_of_person(self, telegram_user_id: int) -> list[Viewed]:
        """An influencer's live connections, newest first (what each brand sees)."""
        async with self.session() as s:
            rows = await s.exec(
                _live()
                .where(col(Invitation.telegram_user_id) == telegram_user_id)
                .order_by(col(Connection.created_at).desc(), col(Connection.id).desc())
            )
            return [Viewed(i, c, name or "") for i, c, name in rows]

    async def stale(self, *, read_before: datetime, limit: int) -> list[Viewed]:
        """Healthy live connections with a Page token whose figures were never read or were
        read before `read_before`: the never-read first, then the oldest."""
        never = col(ProfileSnapshot.id).is_(None)
        async with self.session() as s:
            rows = await s.exec(
                _live()
                .outerjoin(
                    ProfileSnapshot, col(ProfileSnapshot.connection_id) == col(Connection.id)
                )
                .where(
                    col(Connection.health) == "healthy",
                    col(Connection.page_token_encrypted).is_not(None),
                    sa.or_(never, col(ProfileSnapshot.fetched_at) < read_before),
                )
                .order_by(sa.case((never, 0), else_=1), col(ProfileSnapshot.fetched_at))
                .limit(limit)
            )
            return [Viewed(i, c, name or "") for i, c, name in rows]

    async def snapshot(self, connection_id: int) -> ProfileSnapshot | None:
        async with self.session() as s:
            return (
                await s.exec(
                    select(ProfileSnapshot).where(ProfileSnapshot.connection_id == connection_id)
                )
            ).first()

    async def keep(
        self,
        connection_id: int,
        *,
        data: str,
        fetched_at: datetime,
        followers_count: int | None,
        reach_30d: int | None,
        engagement_per_mille: int | None,
    ) -> bool:
        """Store a fresh snapshot (replacing the older one) while the connection is live;
        False when it ended meanwhile (nothing is kept then)."""
        snapshot = ProfileSnapshot(
            connection_id=connection_id,
            data=data,
            fetched_at=fetched_at,
            followers_count=followers_count,
            reach_30d=reach_30d,
            engagement_per_mille=engagement_per_mille,
        )
        values = snapshot.model_dump(exclude={"id", "connection_id"})
        async with self.session() as s:
            live = (
                await s.exec(
                    select(Connection.id)
                    .where(
                        col(Connection.id) == connection_id,
                        col(Connection.status) == ConnectionStatus.ACTIVE,
                    )
                    .with_for_update()
                )
            ).first()
            if live is None:
                await s.rollback()
                return False
            updated = await s.exec(
                sa.update(ProfileSnapshot)
                .where(col(ProfileSnapshot.connection_id) == connection_id)
                .values(**values)
            )
            if not updated.rowcount:
                s.add(snapshot)
                try:
                    await s.flush()
                except IntegrityError:
                    # A read at the same moment (a double tap) stored its snapshot first.
                    await s.rollback()
                    return True
            if followers_count is not None:
                # The connection's own count (the card, /list) follows the newest read.
                await s.exec(
                    sa.update(Connection)
                    .where(col(Connection.id) == connection_id)
                    .values(followers_count=followers_count)
                )
            await s.commit()
            return True

    async def figures(self, connection_ids: list[int]) -> dict[int, Figures]:
        """The headline figures of these connections' snapshots, by connection id."""
        if not connection_ids:
            return {}
        async with self.session() as s:
            rows = await s.exec(
                select(ProfileSnapshot).where(
                    col(ProfileSnapshot.connection_id).in_(connection_ids)
                )
            )
            return {
                r.connection_id: Figures(
                    r.fetched_at, r.followers_count, r.reach_30d, r.engagement_per_mille
                )
                for r in rows
            }
