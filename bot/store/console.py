"""A brand's invitations as the manager's console asks for them.

Every query takes the asking manager's `brand_id` and filters by it: a manager of brand A cannot
read, remind, revoke or export brand B's invitations, whatever ids they send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from bot.crypto import new_invitation_token, secret_hash
from bot.health import HealthReason, HealthState
from bot.models import (
    Connection,
    ConnectionStatus,
    Invitation,
    InvitationEvent,
    InviteStatus,
    LoginAttempt,
    LoginPath,
    Revocation,
    utcnow,
)
from bot.store.base import Repository
from bot.store.events import EventKind, new_event
from bot.store.outbox import Outgoing, drop_brand_notices, enqueue_in
from bot.store.profiles import forget_figures
from bot.verdict import normalize_handle


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
    # The brand's active connections by the way they were made (`LoginPath` value → count).
    paths: dict[str, int] = field(default_factory=dict)


# A connection ended on Facebook's side (the app removed) needs the brand's attention for this
# long: afterwards it is history, in /show and /export only.
ATTENTION_DAYS = 30


@dataclass(frozen=True)
class HealthCounts:
    """A brand's connections by health: the active ones by state, those ended on Facebook's
    side within `ATTENTION_DAYS`, and the active ones a renewal kept alive."""

    healthy: int = 0
    renewal_due: int = 0
    broken: int = 0
    disconnected: int = 0
    renewed: int = 0

    @property
    def attention(self) -> int:
        return self.renewal_due + self.broken + self.disconnected

    @property
    def connections(self) -> int:
        return self.healthy + self.attention


@dataclass(frozen=True)
class NeedsAttention:
    """One connection /health lists, with its invitation."""

    invitation: Invitation
    connection: Connection


def health_of(connection: Connection) -> tuple[HealthState, HealthReason | None]:
    """The health a connection has as the manager sees it. Ended connections are
    disconnected whatever the last check said: withdrawn by the brand, or the app removed on
    Facebook (the deauthorize callback ends them without a check)."""
    reason = _reason(connection.health_reason)
    if connection.status == ConnectionStatus.REVOKED:
        return HealthState.DISCONNECTED, HealthReason.REVOKED
    if connection.status == ConnectionStatus.DISCONNECTED:
        return HealthState.DISCONNECTED, reason or HealthReason.APP_REMOVED
    try:
        state = HealthState(connection.health)
    except ValueError:
        state = HealthState.HEALTHY
    return state, reason if state is not HealthState.HEALTHY else None


def _reason(value: str | None) -> HealthReason | None:
    try:
        return HealthReason(value) if value else None
    except ValueError:
        return None


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


class BrandInvitations(Repository):
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
                    new_event(
                        c.invitation.id,
                        EventKind.CREATED,
                        InviteStatus.PENDING,
                        f"@{c.invitation.handle}",
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
                sa.update(Invitation)
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
        # As /invite takes it: "@anna", "Anna", or the profile's address.
        invites = await self.invitations_for_handle(brand_id=brand_id, handle=normalize_handle(ref))
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

        now = utcnow()
        async with self.session() as s:
            result = await s.exec(
                sa.update(Invitation)
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
            s.add(_event_of(invite, EventKind.REMINDED, now))
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
        token moves to a `Revocation`, to be withdrawn at Facebook until Facebook confirms; an
        Instagram Login connection's token is simply deleted (Instagram has no revoke call)."""

        now = utcnow()
        async with self.session() as s:
            invite = await s.get(Invitation, invitation_id, with_for_update=True)
            if invite is None or invite.brand_id != brand_id:
                return None
            connection = (
                await s.exec(select(Connection).where(Connection.invitation_id == invitation_id))
            ).first()
            active = connection is not None and connection.status == ConnectionStatus.ACTIVE
            if (
                connection is not None
                and connection.token_encrypted
                and connection.path == LoginPath.INSTAGRAM
            ):
                # Instagram Login has no API to revoke an app's grant (Facebook's
                # DELETE /me/permissions does not know its tokens): the token is only deleted.
                connection.token_encrypted = None
                connection.page_token_encrypted = None
                s.add(connection)
            elif (
                connection is not None
                and connection.token_encrypted
                and (active or invite.status == InviteStatus.REVOKED)
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
                connection.page_token_encrypted = None
                s.add(connection)
            if invite.status == InviteStatus.REVOKED:
                await s.commit()
                return invite, None
            if connection is not None and connection.status == ConnectionStatus.ACTIVE:
                connection.status = ConnectionStatus.REVOKED
                connection.ended_at = now
                connection.page_token_encrypted = None
                connection.health = HealthState.DISCONNECTED
                connection.health_reason = HealthReason.REVOKED
                connection.health_changed_at = now
                s.add(connection)
                if connection.id is not None:
                    await forget_figures(s, [connection.id])
            invite.status = InviteStatus.REVOKED
            invite.updated_at = now
            s.add(invite)
            s.add(_event_of(invite, EventKind.REVOKED, now))
            # Notices about it still waiting for the brand's people (a breakage in tomorrow's
            # digest, say) are moot now that a manager has ended it.
            await drop_brand_notices(s, invitation_id)
            enqueue_in(s, outgoing, now)
            await s.commit()
            return invite, connection

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
                    # The funnel is about getting connected; renewals of a connection are not.
                    col(LoginAttempt.renewal).is_(False),
                )
                .group_by(LoginAttempt.outcome)
            )
            reasons = Counter({str(o): int(n) for o, n in outcomes.all()})
            by_path = await s.exec(
                select(Connection.path, sa.func.count())
                .where(
                    col(Connection.invitation_id).in_(ids),
                    Connection.status == ConnectionStatus.ACTIVE,
                )
                .group_by(Connection.path)
            )
            paths = {str(p): int(n) for p, n in by_path.all()}

        def having(kind: EventKind, detail: str | tuple[str, ...] | None = None) -> int:
            return len(
                {
                    i
                    for i, k, d in events
                    if k == kind and (detail is None or (d or "").startswith(detail))
                }
            )

        return Funnel(
            created=len(ids),
            opened=having(EventKind.OPENED),
            # The last check of either way in: the Page linked, or a professional account.
            checks_passed=having(EventKind.CHECK_PASSED, ("page_linked:", "ig_professional:")),
            login_started=having(EventKind.LOGIN_STARTED),
            connected=having(EventKind.VERDICT, "connected"),
            reasons=reasons.most_common(5),
            paths=paths,
        )

    # --- the connections' health (issue 11) ------------------------------------------------

    async def health_counts(self, brand_id: int, *, now: datetime) -> HealthCounts:
        async with self.session() as s:
            active = await s.exec(
                select(
                    Connection.health,
                    sa.func.count(),
                    sa.func.count(col(Connection.renewed_at)),
                )
                .join(Invitation, col(Invitation.id) == col(Connection.invitation_id))
                .where(
                    col(Invitation.brand_id) == brand_id,
                    col(Invitation.status) == InviteStatus.CONNECTED,
                    col(Connection.status) == ConnectionStatus.ACTIVE,
                )
                .group_by(Connection.health)
            )
            by_state: Counter[str] = Counter()
            renewed = 0
            for state, n, kept in active.all():
                # An unknown value (a newer release's) counts as healthy, as `health_of` says.
                known = state if state in set(HealthState) else HealthState.HEALTHY
                by_state[known] += int(n)
                renewed += int(kept)
            ended = await s.exec(
                select(sa.func.count())
                .select_from(Connection)
                .join(Invitation, col(Invitation.id) == col(Connection.invitation_id))
                .where(*_recently_disconnected(brand_id, now))
            )
            return HealthCounts(
                healthy=by_state[HealthState.HEALTHY],
                renewal_due=by_state[HealthState.RENEWAL_DUE],
                broken=by_state[HealthState.BROKEN],
                disconnected=int(ended.one()),
                renewed=renewed,
            )

    async def needs_attention(
        self, *, brand_id: int, now: datetime, offset: int, limit: int
    ) -> list[NeedsAttention]:
        """The brand's connections that need attention (renewal due, broken, or ended on
        Facebook's side within `ATTENTION_DAYS`), the newest problem first."""
        attention = sa.or_(
            sa.and_(
                col(Invitation.brand_id) == brand_id,
                col(Invitation.status) == InviteStatus.CONNECTED,
                col(Connection.status) == ConnectionStatus.ACTIVE,
                col(Connection.health).in_((HealthState.RENEWAL_DUE, HealthState.BROKEN)),
            ),
            sa.and_(*_recently_disconnected(brand_id, now)),
        )
        # When the problem began: an ended connection's end, else the last change of health.
        since = sa.case(
            (
                col(Connection.status) == ConnectionStatus.DISCONNECTED,
                sa.func.coalesce(col(Connection.ended_at), col(Connection.health_changed_at)),
            ),
            else_=sa.func.coalesce(col(Connection.health_changed_at), col(Connection.created_at)),
        )
        async with self.session() as s:
            rows = await s.exec(
                select(Invitation, Connection)
                .join(Connection, col(Connection.invitation_id) == col(Invitation.id))
                .where(attention)
                .order_by(since.desc(), col(Connection.id).desc())
                .offset(offset)
                .limit(limit)
            )
            return [NeedsAttention(invite, connection) for invite, connection in rows.all()]

    async def connections_of(self, invitation_ids: Sequence[int]) -> dict[int, Connection]:
        """The connections of these invitations (those that have one), by invitation id."""
        if not invitation_ids:
            return {}
        async with self.session() as s:
            rows = await s.exec(
                select(Connection).where(col(Connection.invitation_id).in_(invitation_ids))
            )
            return {c.invitation_id: c for c in rows}

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

        now = utcnow()
        async with self.session() as s:
            result = await s.exec(
                sa.update(Invitation)
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
            s.add(_event_of(invite, EventKind.STALLED, now))
            enqueue_in(s, outgoing, now)
            await s.commit()
            return True


def _recently_disconnected(brand_id: int, now: datetime) -> list[sa.ColumnElement[bool]]:
    """This brand's connections ended on Facebook's side within `ATTENTION_DAYS`, whose handle
    is not connected again through another invitation (then nothing needs doing); for a query
    joining Connection to Invitation."""
    other = aliased(Invitation)
    other_connection = aliased(Connection)
    connected_again = (
        sa.select(sa.literal(1))
        .select_from(other)
        .join(other_connection, col(other_connection.invitation_id) == col(other.id))
        .where(
            col(other.brand_id) == brand_id,
            col(other.handle) == col(Invitation.handle),
            col(other.id) != col(Invitation.id),
            col(other_connection.status) == ConnectionStatus.ACTIVE,
        )
        .exists()
    )
    return [
        col(Invitation.brand_id) == brand_id,
        col(Invitation.status) == InviteStatus.CONNECTED,
        col(Connection.status) == ConnectionStatus.DISCONNECTED,
        sa.func.coalesce(col(Connection.ended_at), col(Connection.health_changed_at))
        >= now - timedelta(days=ATTENTION_DAYS),
        ~connected_again,
    ]


def _connected(brand_id: int, handles: Sequence[str]) -> list[sa.ColumnElement[bool]]:
    """This brand's connected invitations (the connection still active) for these handles;
    for a query joining Connection to Invitation."""
    return [
        col(Invitation.brand_id) == brand_id,
        col(Invitation.handle).in_(handles),
        col(Invitation.status) == InviteStatus.CONNECTED,
        col(Connection.status) == ConnectionStatus.ACTIVE,
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


def _event_of(invite: Invitation, kind: EventKind, at: datetime) -> InvitationEvent:
    assert invite.id is not None
    return new_event(invite.id, kind, InviteStatus(invite.status), at=at)
