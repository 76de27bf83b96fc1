"""Database queries of the manager's console: brands, managers, and a brand's invitations.

Part of the storage layer (`bot.store.Database` includes these methods). Every query about
invitations takes the asking manager's `brand_id` and filters by it: a manager of brand A cannot
read, remind, revoke or export brand B's invitations, whatever ids they send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
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
    OutboxAudience,
    OutboxMessage,
    OutboxStatus,
    Revocation,
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


# Invitation ids are INTEGER columns (32-bit on PostgreSQL): a larger number names none, and
# must not reach the database (where it would be an error, not "not found").
MAX_ROW_ID = 2**31 - 1


def row_id(text: str) -> int | None:
    """A row id typed by a person or carried in callback data (`17`, `#17`), or None."""
    text = text.strip().removeprefix("#")
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ROW_ID)):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ROW_ID else None


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
                sa.update(Brand)  # type: ignore[call-overload]
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
                sa.update(Brand)  # type: ignore[call-overload]
                .where(col(Brand.team_chat_id) == old_chat_id)
                .values(team_chat_id=new_chat_id)
            )
            await s.exec(
                sa.update(OutboxMessage)  # type: ignore[call-overload]
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
        reinvite_connected: bool = False,
    ) -> tuple[list[Created], list[str]]:
        """All of `wanted` in one transaction (a failure creates none). Handles with an open
        invitation in this brand, or (unless `reinvite_connected`) a connected one, are returned
        as duplicates, not created again."""
        now = utcnow()
        created: list[Created] = []
        duplicates: list[str] = []
        handles = [w.handle for w in wanted]
        async with self.session() as s:
            open_handles = set(
                (
                    await s.exec(
                        select(Invitation.handle).where(
                            Invitation.brand_id == brand_id,
                            col(Invitation.handle).in_(handles),
                            col(Invitation.status).in_(_OPEN),
                            col(Invitation.expires_at) > now,
                        )
                    )
                ).all()
            )
            if not reinvite_connected:
                connected = select(Invitation.handle).join(
                    Connection, col(Connection.invitation_id) == col(Invitation.id)
                )
                open_handles.update(
                    (await s.exec(connected.where(*_connected(brand_id, handles)))).all()
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

    async def connected_invitation_for(self, *, brand_id: int, handle: str) -> Invitation | None:
        """This brand's invitation for this handle whose connection is active (the newest)."""
        async with self.session() as s:
            query = (
                select(Invitation)
                .join(Connection, col(Connection.invitation_id) == col(Invitation.id))
                .where(*_connected(brand_id, [handle]))
                .order_by(col(Invitation.id).desc())
            )
            return (await s.exec(query)).first()

    async def invitations_for_handle(
        self, *, brand_id: int, handle: str, limit: int = 20
    ) -> list[Invitation]:
        """This brand's invitations for one handle, the newest first."""
        async with self.session() as s:
            rows = await s.exec(
                select(Invitation)
                .where(Invitation.brand_id == brand_id, Invitation.handle == handle)
                .order_by(col(Invitation.id).desc())
                .limit(limit)
            )
            return list(rows)

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

    async def find_invitation(
        self, *, brand_id: int, ref: str, prefer_open: bool = False
    ) -> Invitation | None:
        """By number (`17`, `#17`) or handle (`@anna`), of this brand only. For a handle with
        several invitations, the most relevant: the connected one, else the newest open one,
        else the newest (`prefer_open`: the newest open one first)."""
        ref = ref.strip()
        if ref.lstrip("#").isascii() and ref.lstrip("#").isdigit():
            number = row_id(ref.lstrip("#"))
            if number is None:
                return None
            async with self.session() as s:
                found = await s.get(Invitation, number)
                return found if found is not None and found.brand_id == brand_id else None
        invites = await self.invitations_for_handle(
            brand_id=brand_id, handle=ref.lstrip("@").lower()
        )
        return most_relevant(invites, prefer_open=prefer_open)

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
        self,
        *,
        brand_id: int,
        invitation_id: int,
        outgoing: Sequence[Outgoing],
        requested_by: int | None = None,
    ) -> tuple[Invitation, Connection | None] | None:
        """Withdraw an invitation (its link stops working) and end its connection. Its access
        token moves to a `Revocation`, to be withdrawn at Facebook until Facebook confirms."""
        from bot.store import enqueue_in

        now = utcnow()
        async with self.session() as s:
            invite = await s.get(Invitation, invitation_id, with_for_update=True)
            if invite is None or invite.brand_id != brand_id:
                return None
            connection = (
                await s.exec(select(Connection).where(Connection.invitation_id == invitation_id))
            ).first()
            if connection is not None and connection.token_encrypted and (
                connection.status == "active" or invite.status == InviteStatus.REVOKED
            ):
                # (A token still stored on a withdrawn connection predates revocation retries.)
                s.add(
                    Revocation(
                        invitation_id=invitation_id,
                        requested_by=requested_by,
                        token_encrypted=connection.token_encrypted,
                        next_try_at=now,
                        created_at=now,
                    )
                )
                connection.token_encrypted = None
                s.add(connection)
            if invite.status == InviteStatus.REVOKED:
                await s.commit()
                return invite, None
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
        from bot.store import enqueue_in

        async with self.session() as s:
            result = await s.exec(
                sa.delete(Revocation).where(  # type: ignore[call-overload]
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


def _connected(brand_id: int, handles: Sequence[str]) -> list[sa.ColumnElement[bool]]:
    """This brand's connected invitations (the connection still active) for these handles;
    for a query joining Connection to Invitation."""
    return [
        col(Invitation.brand_id) == brand_id,
        col(Invitation.handle).in_(handles),
        col(Invitation.status) == InviteStatus.CONNECTED,
        col(Connection.status) == "active",
    ]


def most_relevant(invites: Sequence[Invitation], *, prefer_open: bool = False) -> Invitation | None:
    """Of one handle's invitations: the connected one, else the newest still open, else the
    newest; with `prefer_open` the newest open one comes before a connected one."""
    newest = sorted(invites, key=lambda i: i.id or 0, reverse=True)
    connected = [i for i in newest if i.status == InviteStatus.CONNECTED]
    still_open = [i for i in newest if i.status in _OPEN]
    ranked = [*still_open, *connected] if prefer_open else [*connected, *still_open]
    chosen = ranked or newest
    return chosen[0] if chosen else None
