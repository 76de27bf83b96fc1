"""Database queries of the manager's console: brands, managers, and a brand's invitations.

Part of the storage layer (`bot.store.Database` includes these methods). Every query about
invitations takes the asking manager's `brand_id` and filters by it: a manager of brand A cannot
read, remind, revoke or export brand B's invitations, whatever ids they send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.crypto import new_invitation_token, new_secret, secret_hash
from bot.models import (
    Brand,
    Connection,
    Invitation,
    InvitationEvent,
    InviteStatus,
    LoginAttempt,
    Manager,
    ManagerLink,
    utcnow,
)

if TYPE_CHECKING:
    from bot.store import Outgoing


class LinkProblem(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    OTHER_BRAND = "other_brand"  # already a manager of another brand


@dataclass(frozen=True)
class NewInvitation:
    handle: str
    note: str | None = None


@dataclass(frozen=True)
class Created:
    invitation: Invitation
    token: str


@dataclass(frozen=True)
class Funnel:
    created: int
    opened: int
    checks_passed: int
    login_started: int
    connected: int
    reasons: list[tuple[str, int]]  # failure outcome → attempts, most frequent first


_OPEN = (InviteStatus.PENDING, InviteStatus.OPENED, InviteStatus.LOGIN_STARTED, InviteStatus.FAILED)
_IN_PROGRESS = (InviteStatus.OPENED, InviteStatus.LOGIN_STARTED, InviteStatus.FAILED)


class ConsoleQueries:
    def session(self) -> AsyncSession:  # provided by Database
        raise NotImplementedError

    # --- brands and managers -----------------------------------------------------------------

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

    async def remove_manager(self, *, brand_id: int, telegram_id: int) -> bool:
        async with self.session() as s:
            result = await s.exec(
                sa.delete(Manager).where(  # type: ignore[call-overload]
                    col(Manager.telegram_id) == telegram_id, col(Manager.brand_id) == brand_id
                )
            )
            await s.commit()
            return bool(result.rowcount)

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
                sa.update(ManagerLink)  # type: ignore[call-overload]
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

    # --- a brand's invitations ---------------------------------------------------------------

    async def open_invitation_for(self, *, brand_id: int, handle: str) -> Invitation | None:
        """An invitation of this brand for this handle that is still in play (a duplicate)."""
        async with self.session() as s:
            return (
                await s.exec(
                    select(Invitation).where(
                        Invitation.brand_id == brand_id,
                        Invitation.handle == handle,
                        col(Invitation.status).in_(_OPEN),
                        col(Invitation.expires_at) > utcnow(),
                    )
                )
            ).first()

    async def create_invitations(
        self,
        *,
        brand_id: int,
        created_by: int,
        inviter_name: str,
        ttl: timedelta,
        wanted: Sequence[NewInvitation],
        seal: object = None,
    ) -> tuple[list[Created], list[str]]:
        """All of `wanted` in one transaction (a failure creates none). Handles with an open
        invitation in this brand are returned as duplicates, not created again."""
        now = utcnow()
        created: list[Created] = []
        duplicates: list[str] = []
        async with self.session() as s:
            open_handles = set(
                (
                    await s.exec(
                        select(Invitation.handle).where(
                            Invitation.brand_id == brand_id,
                            col(Invitation.handle).in_([w.handle for w in wanted]),
                            col(Invitation.status).in_(_OPEN),
                            col(Invitation.expires_at) > now,
                        )
                    )
                ).all()
            )
            for item in wanted:
                if item.handle in open_handles:
                    duplicates.append(item.handle)
                    continue
                open_handles.add(item.handle)
                token = new_invitation_token()
                invite = Invitation(
                    token_hash=secret_hash(token),
                    token_sealed=seal(token) if callable(seal) else None,
                    handle=item.handle,
                    note=(item.note or None) and item.note[:256],
                    brand_id=brand_id,
                    created_by=created_by,
                    inviter_name=inviter_name[:128],
                    expires_at=now + ttl,
                    created_at=now,
                    updated_at=now,
                )
                s.add(invite)
                created.append(Created(invite, token))
            await s.flush()
            for c in created:
                assert c.invitation.id is not None
                s.add(
                    InvitationEvent(
                        invitation_id=c.invitation.id,
                        kind="created",
                        status=InviteStatus.PENDING,
                        detail=f"@{c.invitation.handle}",
                        at=now,
                    )
                )
            await s.commit()
        return created, duplicates

    async def set_card(
        self, *, invitation_id: int, chat_id: int, message_id: int, is_photo: bool
    ) -> None:
        async with self.session() as s:
            await s.exec(
                sa.update(Invitation)  # type: ignore[call-overload]
                .where(col(Invitation.id) == invitation_id)
                .values(card_chat_id=chat_id, card_message_id=message_id, card_is_photo=is_photo)
            )
            await s.commit()

    async def status_counts(self, brand_id: int) -> dict[str, int]:
        async with self.session() as s:
            rows = await s.exec(
                select(Invitation.status, sa.func.count())
                .where(Invitation.brand_id == brand_id)
                .group_by(Invitation.status)
            )
            return {status: int(n) for status, n in rows.all()}

    async def list_invitations(
        self, *, brand_id: int, status: str | None, offset: int, limit: int
    ) -> list[Invitation]:
        async with self.session() as s:
            query = select(Invitation).where(Invitation.brand_id == brand_id)
            if status:
                query = query.where(Invitation.status == status)
            rows = await s.exec(
                query.order_by(col(Invitation.updated_at).desc(), col(Invitation.id).desc())
                .offset(offset)
                .limit(limit)
            )
            return list(rows)

    async def find_invitation(self, *, brand_id: int, ref: str) -> Invitation | None:
        """By number (`17`, `#17`) or handle (`@anna`): the newest of this brand only."""
        ref = ref.strip().lstrip("#")
        async with self.session() as s:
            query = select(Invitation).where(Invitation.brand_id == brand_id)
            if ref.isdigit():
                query = query.where(Invitation.id == int(ref))
            else:
                query = query.where(Invitation.handle == ref.lstrip("@").lower())
            return (await s.exec(query.order_by(col(Invitation.id).desc()).limit(1))).first()

    async def connection_for(self, invitation_id: int) -> Connection | None:
        async with self.session() as s:
            return (
                await s.exec(select(Connection).where(Connection.invitation_id == invitation_id))
            ).first()

    async def claim_reminder(
        self, *, brand_id: int, invitation_id: int, every: timedelta, outgoing: Sequence[Outgoing]
    ) -> bool:
        """At most one reminder per `every`: the conditional UPDATE is the guard."""
        from bot.store import enqueue_in

        now = utcnow()
        async with self.session() as s:
            result = await s.exec(
                sa.update(Invitation)  # type: ignore[call-overload]
                .where(
                    col(Invitation.id) == invitation_id,
                    col(Invitation.brand_id) == brand_id,
                    sa.or_(
                        col(Invitation.reminded_at).is_(None),
                        col(Invitation.reminded_at) <= now - every,
                    ),
                )
                .values(reminded_at=now)
            )
            if result.rowcount != 1:
                return False
            invite = await s.get(Invitation, invitation_id)
            assert invite is not None
            s.add(_event(invite, "reminded", now))
            enqueue_in(s, outgoing, now)
            await s.commit()
            return True

    async def revoke(
        self, *, brand_id: int, invitation_id: int, outgoing: Sequence[Outgoing]
    ) -> tuple[Invitation, Connection | None] | None:
        """Withdraw an invitation (its link stops working) and end its connection."""
        from bot.store import enqueue_in

        now = utcnow()
        async with self.session() as s:
            invite = await s.get(Invitation, invitation_id, with_for_update=True)
            if invite is None or invite.brand_id != brand_id:
                return None
            if invite.status == InviteStatus.REVOKED:
                return invite, None
            connection = (
                await s.exec(select(Connection).where(Connection.invitation_id == invitation_id))
            ).first()
            if connection is not None and connection.status == "active":
                connection.status = "revoked"
                connection.ended_at = now
                s.add(connection)
            invite.status = InviteStatus.REVOKED
            invite.updated_at = now
            s.add(invite)
            s.add(_event(invite, "revoked", now))
            enqueue_in(s, outgoing, now)
            await s.commit()
            return invite, connection

    async def forget_token(self, connection_id: int) -> None:
        async with self.session() as s:
            await s.exec(
                sa.update(Connection)  # type: ignore[call-overload]
                .where(col(Connection.id) == connection_id)
                .values(token_encrypted=None)
            )
            await s.commit()

    async def brand_events(self, brand_id: int) -> dict[int, list[InvitationEvent]]:
        async with self.session() as s:
            rows = await s.exec(
                select(InvitationEvent)
                .join(Invitation, col(Invitation.id) == col(InvitationEvent.invitation_id))
                .where(Invitation.brand_id == brand_id)
                .order_by(col(InvitationEvent.id))
            )
            events: dict[int, list[InvitationEvent]] = {}
            for event in rows:
                events.setdefault(event.invitation_id, []).append(event)
            return events

    async def brand_connections(self, brand_id: int) -> dict[int, Connection]:
        async with self.session() as s:
            rows = await s.exec(
                select(Connection)
                .join(Invitation, col(Invitation.id) == col(Connection.invitation_id))
                .where(Invitation.brand_id == brand_id)
            )
            return {c.invitation_id: c for c in rows}

    async def funnel(self, brand_id: int) -> Funnel:
        """How far each invitation ever got, from its event history (a later revoke or a failed
        retry does not undo that someone connected)."""
        async with self.session() as s:
            ids = list(
                (await s.exec(select(Invitation.id).where(Invitation.brand_id == brand_id))).all()
            )
            events = (
                await s.exec(
                    select(
                        InvitationEvent.invitation_id, InvitationEvent.kind, InvitationEvent.detail
                    ).where(col(InvitationEvent.invitation_id).in_(ids))
                )
            ).all()
            outcomes = await s.exec(
                select(LoginAttempt.outcome, sa.func.count())
                .where(
                    col(LoginAttempt.invitation_id).in_(ids),
                    col(LoginAttempt.outcome).is_not(None),
                    LoginAttempt.outcome != "connected",
                )
                .group_by(LoginAttempt.outcome)
            )
            reasons = Counter({str(o): int(n) for o, n in outcomes.all()})

        def having(kind: str, detail: str | None = None) -> int:
            return len(
                {
                    i
                    for i, k, d in events
                    if k == kind and (detail is None or (d or "").startswith(detail))
                }
            )

        return Funnel(
            created=len(ids),
            opened=having("opened"),
            checks_passed=having("check_passed", "page_linked"),
            login_started=having("login_started"),
            connected=having("verdict", "connected"),
            reasons=reasons.most_common(5),
        )

    async def stalled(self, *, older_than: datetime) -> list[Invitation]:
        """Opened but no progress since `older_than`, not yet reported for this stall."""
        async with self.session() as s:
            rows = await s.exec(
                select(Invitation).where(
                    col(Invitation.status).in_(_IN_PROGRESS),
                    col(Invitation.updated_at) < older_than,
                    sa.or_(
                        col(Invitation.stalled_at).is_(None),
                        col(Invitation.stalled_at) < Invitation.updated_at,
                    ),
                )
            )
            return list(rows)

    async def mark_stalled(self, *, invitation_id: int, outgoing: Sequence[Outgoing]) -> bool:
        from bot.store import enqueue_in

        now = utcnow()
        async with self.session() as s:
            result = await s.exec(
                sa.update(Invitation)  # type: ignore[call-overload]
                .where(
                    col(Invitation.id) == invitation_id,
                    sa.or_(
                        col(Invitation.stalled_at).is_(None),
                        col(Invitation.stalled_at) < Invitation.updated_at,
                    ),
                )
                .values(stalled_at=now)
            )
            if result.rowcount != 1:
                return False
            invite = await s.get(Invitation, invitation_id)
            assert invite is not None
            s.add(_event(invite, "stalled", now))
            enqueue_in(s, outgoing, now)
            await s.commit()
            return True


def _event(invite: Invitation, kind: str, at: datetime) -> InvitationEvent:
    assert invite.id is not None
    return InvitationEvent(
        invitation_id=invite.id, kind=kind, status=InviteStatus(invite.status), at=at
    )
