"""The one place that writes an invitation's events (its timeline), and the kinds there are."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import InvitationEvent, InviteStatus, utcnow


class EventKind(StrEnum):
    CREATED = "created"
    OPENED = "opened"
    CHECK_PASSED = "check_passed"
    CHECK_ANSWERED = "check_answered"
    PAUSED = "paused"
    RESUMED = "resumed"  # Continue after /cancel
    UNREACHABLE = "unreachable"
    LOGIN_STARTED = "login_started"
    LOGIN_INTERRUPTED = "login_interrupted"
    VERDICT = "verdict"
    REMINDED = "reminded"
    REVOKED = "revoked"
    STALLED = "stalled"
    DEAUTHORIZED = "deauthorized"
    DATA_DELETED = "data_deleted"
    # A kept connection's life (issue 11): the detail names the new state and reason.
    HEALTH = "health"  # a check changed the connection's health (detail: "state" or "state:reason")
    RENEWAL_ASKED = "renewal_asked"  # the influencer was asked to renew (detail: the lead in days)
    RENEWED = "renewed"  # a renewal login kept the same connection with fresh tokens
    # The platform read the connection's Page token through the read API (detail: the key's prefix).
    TOKEN_READ = "token_read"


def new_event(
    invitation_id: int,
    kind: EventKind,
    status: InviteStatus | str,
    detail: str | None = None,
    *,
    at: datetime | None = None,
) -> InvitationEvent:
    """An event row to add to the transaction making the change it records."""
    return InvitationEvent(
        invitation_id=invitation_id,
        kind=kind,
        status=status,
        detail=detail,
        at=at or utcnow(),
    )


async def newest_event(s: AsyncSession, invitation_id: int) -> InvitationEvent | None:
    return (
        await s.exec(
            select(InvitationEvent)
            .where(InvitationEvent.invitation_id == invitation_id)
            .order_by(col(InvitationEvent.id).desc())
            .limit(1)
        )
    ).first()


async def add_event_coalesced(
    s: AsyncSession, invitation_id: int, kind: EventKind, status: InviteStatus, detail: str | None
) -> None:
    """An event, unless the invitation's newest event is the same one: then only its time moves
    (a hundred new login buttons in a row are one "login started" in the timeline)."""
    last = await newest_event(s, invitation_id)
    if last is not None and (last.kind, last.status, last.detail) == (kind, status, detail):
        last.at = utcnow()
        s.add(last)
        return
    s.add(new_event(invitation_id, kind, status, detail))
