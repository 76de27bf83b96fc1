"""Invitations: made, found, their events. Binding one and moving its steps are in
`bot.store.steps` (one transaction each).

State changes that must not race are single conditional UPDATEs, so two updates of one person
cannot both win, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import col, select

from bot.crypto import new_invitation_token, secret_hash
from bot.models import (
    Invitation,
    InvitationEvent,
    InviteStatus,
    utcnow,
)
from bot.store.base import Repository
from bot.store.events import EventKind, new_event


class BindProblem(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    TAKEN = "taken"  # bound to another Telegram account



@dataclass(frozen=True)
class Bound:
    invitation: Invitation
    fresh: bool  # False when the same person opened the link again



class Invitations(Repository):
    async def create_invitation(
        self, *, handle: str, created_by: int, inviter_name: str, ttl: timedelta
    ) -> tuple[Invitation, str]:
        """Returns the invitation and its link token; only the token's hash is stored."""
        token = new_invitation_token()
        now = utcnow()
        invite = Invitation(
            token_hash=secret_hash(token),
            handle=handle,
            created_by=created_by,
            inviter_name=inviter_name[:128],
            expires_at=now + ttl,
            created_at=now,
            updated_at=now,
        )
        async with self.session() as s:
            s.add(invite)
            await s.flush()
            assert invite.id is not None
            s.add(new_event(invite.id, EventKind.CREATED, InviteStatus.PENDING, f"@{handle}"))
            await s.commit()
        return invite, token

    async def get_invitation(self, invitation_id: int) -> Invitation | None:
        async with self.session() as s:
            return await s.get(Invitation, invitation_id)

    async def active_invitation_of(self, telegram_user_id: int) -> Invitation | None:
        """The invitation this person is working on now (most recently touched, not revoked)."""
        async with self.session() as s:
            return (
                await s.exec(
                    select(Invitation)
                    .where(
                        Invitation.telegram_user_id == telegram_user_id,
                        col(Invitation.status) != InviteStatus.REVOKED,
                    )
                    .order_by(col(Invitation.updated_at).desc(), col(Invitation.id).desc())
                    .limit(1)
                )
            ).first()

    async def invitation_of(
        self, *, invitation_id: int, telegram_user_id: int
    ) -> Invitation | None:
        """The invitation if it is bound to this person (buttons carry ids: never trust them)."""
        async with self.session() as s:
            invite = await s.get(Invitation, invitation_id)
            if invite is None or invite.telegram_user_id != telegram_user_id:
                return None
            return invite

    async def claim_step_repeat(self, *, invitation_id: int, quiet_since: datetime) -> bool:
        """True if the current step may be shown again in full: it was neither reached nor
        repeated after `quiet_since`. Marks the repeat, so of two messages only one wins."""
        now = utcnow()
        async with self.session() as s:
            result = await s.exec(
                sa.update(Invitation)
                .where(
                    col(Invitation.id) == invitation_id,
                    col(Invitation.updated_at) <= quiet_since,
                    sa.or_(
                        col(Invitation.step_repeated_at).is_(None),
                        col(Invitation.step_repeated_at) <= quiet_since,
                    ),
                )
                # Not `updated_at`: a repeat is no progress (the stall report reads it).
                .values(step_repeated_at=now)
            )
            await s.commit()
            return bool(result.rowcount == 1)

    async def paused(self, invitation_id: int) -> bool:
        """Whether the setup is paused: the invitation's newest event is a /cancel."""
        async with self.session() as s:
            kind = (
                await s.exec(
                    select(InvitationEvent.kind)
                    .where(InvitationEvent.invitation_id == invitation_id)
                    .order_by(col(InvitationEvent.id).desc())
                    .limit(1)
                )
            ).first()
            return kind == EventKind.PAUSED

    async def record_event(
        self, *, invitation_id: int, kind: EventKind, detail: str | None = None
    ) -> None:
        async with self.session() as s:
            invite = await s.get(Invitation, invitation_id)
            if invite is None:
                return
            s.add(new_event(invitation_id, kind, InviteStatus(invite.status), detail))
            await s.commit()

    async def events(self, invitation_id: int) -> list[InvitationEvent]:
        async with self.session() as s:
            rows = await s.exec(
                select(InvitationEvent)
                .where(InvitationEvent.invitation_id == invitation_id)
                .order_by(col(InvitationEvent.id))
            )
            return list(rows)


OPEN_STATUSES = (InviteStatus.OPENED, InviteStatus.LOGIN_STARTED, InviteStatus.FAILED)

