"""People's data leaving: Meta's deauthorize and data deletion callbacks, and /forget.

`db.privacy` of the store (`bot.store.db.Database`). Each change is one transaction that begins
with its write (so two replicas, or a replayed callback, cannot both act on the same rows, and
SQLite never has to upgrade a read lock), and the notices about it are written to the outbox in
that same transaction.

"Deleted" means the rows are gone: a connection's Facebook user id, Page id and name, Instagram id
and username, follower count, permissions and token. The invitation stays (the manager's record
of whom they invited), closed, with an event saying why; delivered outbox messages about it are
deleted too, since their text quoted the Page and the follower count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.health import HealthReason, HealthState
from bot.models import (
    Brand,
    Connection,
    ConnectionStatus,
    DeletionRequest,
    Invitation,
    InvitationEvent,
    InviteStatus,
    LoginPath,
    Manager,
    OutboxMessage,
    OutboxStatus,
    Person,
    utcnow,
)
from bot.store.base import Repository
from bot.store.events import EventKind, new_event
from bot.store.outbox import Outgoing, enqueue_in
from bot.store.profiles import forget_figures


@dataclass(frozen=True)
class Affected:
    """An invitation whose connection data just changed, for composing the notices."""

    invitation: Invitation
    team_chat_id: int | None  # the brand's team chat, if it has one
    # Who manages the invitation's brand right now (their notices are checked again when
    # delivered); empty for an invitation from before brands existed: its creator hears it.
    managers: tuple[int, ...] = ()


# Builds the notices for one affected invitation from the people involved (by Telegram id), inside
# the transaction that makes the change.
Notices = Callable[[Affected, Mapping[int, Person]], "Sequence[Outgoing]"]


class Privacy(Repository):
    # --- deauthorize ---------------------------------------------------------------------------

    async def disconnect_facebook_user(
        self, *, facebook_user_id: str, notices: Notices
    ) -> list[Affected]:
        """That person's active connections become disconnected and lose their token."""
        now = utcnow()
        async with self.session() as s:
            ended = await s.exec(
                sa.update(Connection)
                .where(
                    col(Connection.facebook_user_id) == facebook_user_id,
                    col(Connection.status) == ConnectionStatus.ACTIVE,
                )
                .values(
                    status=ConnectionStatus.DISCONNECTED,
                    ended_at=now,
                    token_encrypted=None,
                    page_token_encrypted=None,
                    # The health checks' word for it (`bot.health`): removed on Facebook.
                    health=HealthState.DISCONNECTED,
                    health_reason=HealthReason.APP_REMOVED,
                    health_changed_at=now,
                )
                .returning(col(Connection.invitation_id))
            )
            ids = sorted({row[0] for row in ended.all()})
            if not ids:
                await s.rollback()
                return []
            await forget_figures(
                s,
                select(Connection.id).where(col(Connection.invitation_id).in_(ids)),
            )
            affected = await _close(
                s, ids, kind=EventKind.DEAUTHORIZED, detail=None, now=now, revoke=False
            )
            await _notify(s, affected, notices, now)
            await s.commit()
            return affected

    # --- data deletion -------------------------------------------------------------------------

    async def open_deletion_request(
        self, *, facebook_user_id: str, confirmation_code: str, issued_at: int | None = None
    ) -> DeletionRequest:
        """A new request, or, for the same signed_request again (same person, same `issued_at`:
        a replay, or Meta's retry), the one it already opened: no second row."""
        async with self.session() as s:
            request = DeletionRequest(
                confirmation_code=confirmation_code,
                facebook_user_id=facebook_user_id[:64],
                issued_at=issued_at,
                status="received",
                created_at=utcnow(),
            )
            s.add(request)
            try:
                await s.commit()
                return request
            except sa.exc.IntegrityError:
                # The unique (facebook_user_id, issued_at) index: this request exists already.
                await s.rollback()
                if issued_at is None:
                    raise
            existing = (
                await s.exec(
                    select(DeletionRequest).where(
                        DeletionRequest.facebook_user_id == facebook_user_id[:64],
                        DeletionRequest.issued_at == issued_at,
                    )
                )
            ).first()
            if existing is None:  # the other one's transaction rolled back after all
                raise RuntimeError("deletion request vanished")
            return existing

    async def complete_deletion_request(
        self, *, request_id: int, notices: Notices
    ) -> list[Affected] | None:
        """Delete the person's connections and mark the request completed, in one transaction;
        None when it was completed already (by another replica, or the periodic job)."""
        now = utcnow()
        async with self.session() as s:
            claimed = await s.exec(
                sa.update(DeletionRequest)
                .where(
                    col(DeletionRequest.id) == request_id,
                    col(DeletionRequest.status) == "received",
                )
                .values(status="completed", completed_at=now)
                .returning(col(DeletionRequest.facebook_user_id))
            )
            row = claimed.first()
            if row is None:
                await s.rollback()
                return None
            await forget_figures(
                s, select(Connection.id).where(col(Connection.facebook_user_id) == row[0])
            )
            deleted = await s.exec(
                sa.delete(Connection)
                .where(col(Connection.facebook_user_id) == row[0])
                .returning(col(Connection.invitation_id))
            )
            ids = sorted({r[0] for r in deleted.all()})
            await s.exec(
                sa.update(DeletionRequest)
                .where(col(DeletionRequest.id) == request_id)
                .values(deleted_connections=len(ids))
            )
            affected = await _close(
                s, ids, kind=EventKind.DATA_DELETED, detail="meta", now=now, revoke=True
            )
            await _scrub_outbox(s, ids)
            await _notify(s, affected, notices, now)
            await s.commit()
            return affected

    async def deletion_request(self, confirmation_code: str) -> DeletionRequest | None:
        async with self.session() as s:
            return (
                await s.exec(
                    select(DeletionRequest).where(
                        DeletionRequest.confirmation_code == confirmation_code
                    )
                )
            ).first()

    async def unfinished_deletion_requests(self, *, older_than: datetime) -> list[DeletionRequest]:
        async with self.session() as s:
            rows = await s.exec(
                select(DeletionRequest)
                .where(
                    DeletionRequest.status == "received",
                    col(DeletionRequest.created_at) < older_than,
                )
                .order_by(col(DeletionRequest.id))
            )
            return list(rows)

    # --- /forget -------------------------------------------------------------------------------

    async def forgettable(self, telegram_user_id: int) -> list[Invitation]:
        """Open invitations of this person, and closed ones that still have a connection row."""
        async with self.session() as s:
            rows = await s.exec(
                select(Invitation)
                .where(
                    Invitation.telegram_user_id == telegram_user_id,
                    sa.or_(
                        col(Invitation.status) != InviteStatus.REVOKED,
                        col(Invitation.id).in_(select(Connection.invitation_id)),
                    ),
                )
                .order_by(col(Invitation.id))
            )
            return list(rows)

    async def sealed_tokens_of(self, telegram_user_id: int) -> list[str]:
        """The encrypted tokens of this person's Facebook Login connections (to revoke them at
        Facebook). Instagram Login tokens are left out: Instagram has no call to revoke an app's
        grant, and Facebook does not know them; deleting the connection deletes them."""
        async with self.session() as s:
            rows = await s.exec(
                select(Connection.token_encrypted)
                .join(Invitation, col(Invitation.id) == col(Connection.invitation_id))
                .where(
                    Invitation.telegram_user_id == telegram_user_id,
                    col(Connection.path) != LoginPath.INSTAGRAM,
                    col(Connection.token_encrypted).is_not(None),
                )
            )
            return [t for t in rows.all() if t]

    async def login_paths_of(self, telegram_user_id: int) -> set[LoginPath]:
        """The ways in (`LoginPath`) of this person's stored connections."""
        async with self.session() as s:
            rows = await s.exec(
                select(Connection.path)
                .join(Invitation, col(Invitation.id) == col(Connection.invitation_id))
                .where(Invitation.telegram_user_id == telegram_user_id)
                .distinct()
            )
            return {LoginPath(p) for p in rows.all()}

    async def forget_telegram_user(
        self, *, telegram_user_id: int, notices: Notices
    ) -> list[Affected]:
        """The influencer asked the bot to forget them: their invitations close and their
        connections' data is deleted."""
        now = utcnow()
        async with self.session() as s:
            closed = await s.exec(
                sa.update(Invitation)
                .where(
                    col(Invitation.telegram_user_id) == telegram_user_id,
                    col(Invitation.status) != InviteStatus.REVOKED,
                )
                .values(status=InviteStatus.REVOKED, updated_at=now)
                .returning(col(Invitation.id))
            )
            ids = {row[0] for row in closed.all()}
            mine = select(Invitation.id).where(Invitation.telegram_user_id == telegram_user_id)
            await forget_figures(
                s, select(Connection.id).where(col(Connection.invitation_id).in_(mine))
            )
            deleted = await s.exec(
                sa.delete(Connection)
                .where(col(Connection.invitation_id).in_(mine))
                .returning(col(Connection.invitation_id))
            )
            ids.update(row[0] for row in deleted.all())
            if not ids:
                await s.rollback()
                return []
            ordered = sorted(ids)
            affected = await _close(
                s, ordered, kind=EventKind.DATA_DELETED, detail="forget", now=now, revoke=True
            )
            await _scrub_outbox(s, ordered)
            await _notify(s, affected, notices, now)
            await s.commit()
            return affected


async def _close(
    s: AsyncSession,
    invitation_ids: Sequence[int],
    *,
    kind: EventKind,
    detail: str | None,
    now: datetime,
    revoke: bool,
) -> list[Affected]:
    """An event on each invitation (closing it first when `revoke`), and what the notices need."""
    if not invitation_ids:
        return []
    if revoke:
        await s.exec(
            sa.update(Invitation)
            .where(
                col(Invitation.id).in_(invitation_ids),
                col(Invitation.status) != InviteStatus.REVOKED,
            )
            .values(status=InviteStatus.REVOKED, updated_at=now)
        )
    invites = list(
        await s.exec(
            select(Invitation)
            .where(col(Invitation.id).in_(invitation_ids))
            .order_by(col(Invitation.id))
            .execution_options(populate_existing=True)
        )
    )
    brand_ids = {i.brand_id for i in invites if i.brand_id is not None}
    teams: dict[int, int | None] = {}
    if brand_ids:
        rows = await s.exec(
            select(Brand.id, Brand.team_chat_id).where(col(Brand.id).in_(brand_ids))
        )
        teams = {brand_id: chat for brand_id, chat in rows.all() if brand_id is not None}
    managers: dict[int, list[int]] = {}
    if brand_ids:
        members = await s.exec(
            select(Manager.brand_id, Manager.telegram_id)
            .where(col(Manager.brand_id).in_(brand_ids))
            .order_by(col(Manager.created_at))
        )
        for brand_id, telegram_id in members.all():
            managers.setdefault(brand_id, []).append(telegram_id)
    affected = []
    for invite in invites:
        assert invite.id is not None
        s.add(new_event(invite.id, kind, invite.status, detail, at=now))
        team = teams.get(invite.brand_id) if invite.brand_id is not None else None
        brand_managers = managers.get(invite.brand_id, []) if invite.brand_id is not None else []
        affected.append(Affected(invite, team, tuple(brand_managers)))
    return affected


async def _scrub_outbox(s: AsyncSession, invitation_ids: Sequence[int]) -> None:
    """Delivered messages about these invitations quoted the Page and the follower count."""
    if invitation_ids:
        await s.exec(
            sa.delete(OutboxMessage).where(
                col(OutboxMessage.invitation_id).in_(invitation_ids),
                col(OutboxMessage.status) != OutboxStatus.PENDING,
            )
        )
        # So do the login results' particulars kept for the managers' timeline (bot.facts).
        await s.exec(
            sa.update(InvitationEvent)
            .where(col(InvitationEvent.invitation_id).in_(invitation_ids))
            .values(facts=None)
        )


async def _notify(
    s: AsyncSession, affected: Sequence[Affected], notices: Notices, now: datetime
) -> None:

    chats = {a.invitation.created_by for a in affected}
    chats.update(a.invitation.telegram_user_id for a in affected if a.invitation.telegram_user_id)
    chats.update(m for a in affected for m in a.managers)
    chats.update(a.team_chat_id for a in affected if a.team_chat_id is not None)
    people = await _people(s, chats)
    for item in affected:
        enqueue_in(s, notices(item, people), now)


async def _people(s: AsyncSession, ids: Iterable[int]) -> dict[int, Person]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await s.exec(select(Person).where(col(Person.telegram_id).in_(wanted)))
    return {p.telegram_id: p for p in rows}
