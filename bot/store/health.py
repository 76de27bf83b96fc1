"""A kept connection's health checks (`bot.upkeep`): claiming the connections that are due, and
recording what a check found, with its event and the messages it causes, in one transaction.

`db.health` of the store (`bot.store.db.Database`). A claim pushes the connections' next check
ahead (the claim's `hold`) in the same statement that picks them, so two replicas (or two rounds
of one) never check the same connection at once; a replica that dies mid-check leaves its claims
to come due again after the hold. A result is written only while the connection still holds the
token that was checked: a renewal, a /revoke or a deauthorize in between wins.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select

from bot.models import Connection, ConnectionStatus, Invitation, InvitationEvent, Person
from bot.store.base import Repository
from bot.store.events import EventKind, new_event
from bot.store.outbox import Outgoing, drop_brand_notices, enqueue_in
from bot.store.profiles import forget_figures

_connection = sa.inspect(Connection).local_table
_invitation = sa.inspect(Invitation).local_table
_person = sa.inspect(Person).local_table

_DISCONNECTED = "disconnected"  # bot.health.HealthState.DISCONNECTED (the store knows no verdicts)
_HEALTHY = "healthy"


@dataclass(frozen=True)
class DueCheck:
    """One claimed connection: what its check needs, and whom its news is for."""

    connection_id: int
    invitation_id: int
    invitation_status: str
    brand_id: int | None
    handle: str
    inviter_name: str
    influencer_id: int | None  # the influencer's Telegram id
    language: str | None  # ... their chosen language
    telegram_language: str | None  # ... and their Telegram app's
    facebook_user_id: str
    page_id: str
    page_name: str
    instagram_id: str
    instagram_username: str
    token_encrypted: str
    page_token_encrypted: str | None
    health: str
    health_reason: str | None
    renewal_stage: int | None
    token_expires_at: datetime | None
    data_access_expires_at: datetime | None
    # The way in (`bot.models.LoginPath`): an Instagram Login connection is checked, and its
    # token refreshed, on Instagram's host (issue 13).
    path: str = "facebook"


@dataclass(frozen=True)
class BreakageDetails:
    """What a breakage notice names beyond its reason: the permissions removed, the account's
    new username. Stored as the HEALTH event's facts (JSON)."""

    declined: tuple[str, ...] = ()
    username: str = ""

    def to_json(self) -> str:
        return json.dumps({"declined": list(self.declined), "username": self.username})

    @classmethod
    def from_json(cls, raw: str | None) -> BreakageDetails:
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        declined = data.get("declined")
        username = data.get("username")
        return cls(
            tuple(d for d in declined if isinstance(d, str)) if isinstance(declined, list) else (),
            username if isinstance(username, str) else "",
        )


@dataclass(frozen=True)
class CheckResult:
    """What to write after one check. `token_expires_at`: what debug_token said of the token
    checked, written as is (None: it does not expire, as a Page token from a long-lived user
    token); `data_access_expires_at`: written when known. `event_detail` set: the state or
    reason changed (an `EventKind.HEALTH` event); `renewal_asked`: the influencer is asked to
    renew at this lead (an `EventKind.RENEWAL_ASKED` event). `outgoing`: the messages it
    causes."""

    check: DueCheck
    health: str
    health_reason: str | None
    next_check_at: datetime
    renewal_stage: int | None
    token_expires_at: datetime | None = None
    data_access_expires_at: datetime | None = None
    event_detail: str | None = None
    # With `event_detail`: the breakage's particulars (`BreakageDetails`), kept with the event so
    # that the notice can be shown again exactly (a reminder, the influencer's /start).
    details: BreakageDetails | None = None
    renewal_asked: int | None = None
    outgoing: Sequence[Outgoing] = field(default_factory=tuple)
    # An Instagram Login token refreshed by the check (sealed): kept instead of the one checked.
    new_token_encrypted: str | None = field(default=None, repr=False)


class Health(Repository):
    async def claim_due(self, *, now: datetime, limit: int, hold: datetime) -> list[DueCheck]:
        """Up to `limit` active connections with a kept token whose check is due (never checked
        first, then the longest overdue), claimed by moving their next check to `hold`."""
        due = (
            sa.select(_connection.c.id)
            .where(
                _connection.c.status == ConnectionStatus.ACTIVE,
                _connection.c.token_encrypted.is_not(None),
                sa.or_(
                    _connection.c.next_check_at.is_(None),
                    _connection.c.next_check_at <= now,
                ),
            )
            .order_by(sa.nulls_first(_connection.c.next_check_at.asc()), _connection.c.id)
            .limit(limit)
            # PostgreSQL: rows another replica is claiming right now are skipped, not waited
            # for. SQLite has one writer at a time, and renders no FOR UPDATE.
            .with_for_update(skip_locked=True)
        )
        async with self.session() as s, s.begin():
            conn = await s.connection()
            claimed = (
                await conn.execute(
                    sa.update(Connection)
                    .where(col(Connection.id).in_(due.scalar_subquery()))
                    .values(next_check_at=hold)
                    .returning(col(Connection.id))
                )
            ).all()
            ids = sorted(row[0] for row in claimed if row[0] is not None)
            if not ids:
                return []
            rows = (
                await conn.execute(
                    sa.select(
                        _connection.c.id.label("connection_id"),
                        _connection.c.invitation_id,
                        _invitation.c.status.label("invitation_status"),
                        _invitation.c.brand_id,
                        _invitation.c.handle,
                        _invitation.c.inviter_name,
                        _invitation.c.telegram_user_id.label("influencer_id"),
                        _person.c.language,
                        _person.c.telegram_language,
                        _connection.c.facebook_user_id,
                        _connection.c.page_id,
                        _connection.c.page_name,
                        _connection.c.instagram_id,
                        _connection.c.instagram_username,
                        _connection.c.token_encrypted,
                        _connection.c.page_token_encrypted,
                        _connection.c.health,
                        _connection.c.health_reason,
                        _connection.c.renewal_stage,
                        _connection.c.token_expires_at,
                        _connection.c.data_access_expires_at,
                        _connection.c.path,
                    )
                    .select_from(
                        _connection.join(
                            _invitation, _invitation.c.id == _connection.c.invitation_id
                        ).outerjoin(
                            _person, _person.c.telegram_id == _invitation.c.telegram_user_id
                        )
                    )
                    .where(_connection.c.id.in_(ids))
                    .order_by(_connection.c.id)
                )
            ).all()
        return [DueCheck(**row._mapping) for row in rows]

    async def postpone(self, connection_ids: Sequence[int], *, until: datetime) -> None:
        """Nothing could be judged (Graph down or throttling): only the next check moves."""
        if not connection_ids:
            return
        async with self.session() as s, s.begin():
            await s.exec(
                sa.update(Connection)
                .where(col(Connection.id).in_(connection_ids))
                .values(next_check_at=until)
            )

    async def record_checks(self, results: Sequence[CheckResult], *, now: datetime) -> set[int]:
        """Write the checks' results, their events and their messages in one transaction.
        A result is written only while its connection is active with the token that was
        checked; returns the ids of the connections written."""
        written: set[int] = set()
        if not results:
            return written
        async with self.session() as s, s.begin():
            for result in results:
                check = result.check
                values: dict[str, object] = {
                    "health": result.health,
                    "health_reason": result.health_reason,
                    "checked_at": now,
                    "next_check_at": result.next_check_at,
                    "renewal_stage": result.renewal_stage,
                    "token_expires_at": result.token_expires_at,
                }
                if result.data_access_expires_at is not None:
                    values["data_access_expires_at"] = result.data_access_expires_at
                if result.new_token_encrypted is not None:
                    values["token_encrypted"] = result.new_token_encrypted
                if result.event_detail is not None:
                    values["health_changed_at"] = now
                if result.health == _DISCONNECTED:
                    # As the deauthorize callback does: the connection ends, its tokens go.
                    values.update(
                        status=ConnectionStatus.DISCONNECTED,
                        ended_at=now,
                        token_encrypted=None,
                        page_token_encrypted=None,
                    )
                updated = await s.exec(
                    sa.update(Connection)
                    .where(
                        col(Connection.id) == check.connection_id,
                        col(Connection.status) == ConnectionStatus.ACTIVE,
                        col(Connection.token_encrypted) == check.token_encrypted,
                    )
                    .values(**values)
                )
                if updated.rowcount != 1:
                    continue  # renewed, revoked or ended meanwhile: this check is stale
                written.add(check.connection_id)
                if result.health == _DISCONNECTED:
                    await forget_figures(s, [check.connection_id])
                outgoing = result.outgoing
                # Mended before the digest went out: its line would report a breakage that is
                # over, and the brand's people hear neither it nor the mending.
                if (
                    result.health == _HEALTHY
                    and result.event_detail is not None
                    and await drop_brand_notices(s, check.invitation_id, due_after=now)
                ):
                    outgoing = [o for o in outgoing if o.audience is None]
                if result.event_detail is not None:
                    event = new_event(
                        check.invitation_id,
                        EventKind.HEALTH,
                        check.invitation_status,
                        result.event_detail,
                        at=now,
                    )
                    if result.details is not None:
                        event.facts = result.details.to_json()
                    s.add(event)
                if result.renewal_asked is not None:
                    s.add(
                        new_event(
                            check.invitation_id,
                            EventKind.RENEWAL_ASKED,
                            check.invitation_status,
                            str(result.renewal_asked),
                            at=now,
                        )
                    )
                enqueue_in(s, outgoing, now)
        return written

    async def connection_of(self, invitation_id: int) -> Connection | None:
        """The invitation's connection (any status), for a reminder about its health."""
        async with self.session() as s:
            found = await s.exec(
                select(Connection).where(col(Connection.invitation_id) == invitation_id)
            )
            return found.first()

    async def breakage_details(self, invitation_id: int) -> BreakageDetails:
        """The particulars of the connection's latest health change (empty when none)."""
        async with self.session() as s:
            facts = (
                await s.exec(
                    select(InvitationEvent.facts)
                    .where(
                        col(InvitationEvent.invitation_id) == invitation_id,
                        col(InvitationEvent.kind) == EventKind.HEALTH,
                    )
                    .order_by(col(InvitationEvent.id).desc())
                    .limit(1)
                )
            ).first()
            return BreakageDetails.from_json(facts)

    async def reset_reminder_if_changed(self, invitation_id: int) -> None:
        """Forget the invitation's last reminder (`Invitation.reminded_at`) when its connection's
        health changed after it: the hourly limit on reminders is per problem, not per
        invitation."""
        changed_at = (
            sa.select(_connection.c.health_changed_at)
            .where(_connection.c.invitation_id == invitation_id)
            .limit(1)
            .scalar_subquery()
        )
        async with self.session() as s, s.begin():
            await s.exec(
                sa.update(Invitation)
                .where(
                    col(Invitation.id) == invitation_id,
                    col(Invitation.reminded_at) < changed_at,
                )
                .values(reminded_at=None)
            )

    async def counts(self) -> dict[str, int]:
        """Connections by health: the active ones by their health state, the ended ones as
        disconnected (for the operator's gauge)."""
        state = sa.case(
            (_connection.c.status == ConnectionStatus.ACTIVE, _connection.c.health),
            else_=sa.literal(_DISCONNECTED),
        )
        async with self.session() as s, s.begin():
            conn = await s.connection()
            rows = (await conn.execute(sa.select(state, sa.func.count()).group_by(state))).all()
        return {str(name): int(count) for name, count in rows}
