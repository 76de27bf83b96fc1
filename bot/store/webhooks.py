"""The platform's webhooks in the database (issue 12): the outbox rows (`WebhookDelivery`), written
in the transaction of the invitation event they report, and the brand's webhook settings.

`WebhookSession` is the store's session class (`bot.store.db`): before each flush it looks at the
new `InvitationEvent` rows, whichever repository added them, and adds one delivery row for each
event the platform hears of (`bot.webhooks.reported`) of a brand with a webhook URL. So the
delivery commits or rolls back with the change itself, and no call site can forget it. Events
written with a bulk INSERT bypass the flush: only the steps before the login are written so, and
those are not reported.

`db.webhooks` claims due rows for the leader's sender (`bot.webhook_sender`): the oldest pending
row of each invitation only (in order per invitation), pushed ahead by the claim's hold in the same
statement that picks them (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so two replicas never POST the
same row at once and a sender that dies leaves its rows to come due again, with the same event id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import Session, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import (
    Brand,
    Connection,
    Invitation,
    InvitationEvent,
    LoginPath,
    Step,
    WebhookDelivery,
    utcnow,
)
from bot.store.base import Repository
from bot.webhooks import Reported, Subject, WebhookType, body, new_event_id, reported

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
_ERROR_MAX = 200  # WebhookDelivery.last_error

_delivery = sa.inspect(WebhookDelivery).local_table
_brand = sa.inspect(Brand).local_table
_invitation = sa.inspect(Invitation).local_table
_connection = sa.inspect(Connection).local_table
# The event kinds `bot.webhooks.reported` may report: others never cost a query.
_REPORTABLE = frozenset(
    {"opened", "verdict", "health", "renewed", "revoked", "deauthorized", "data_deleted"}
)
_CONNECTION_FIELDS = ("instagram_id", "instagram_username", "page_id", "health", "path")


_KNOWN = "webhook_known"


class WebhookSession(Session):
    """The store's session: writes webhook deliveries beside new invitation events."""


@dataclass(frozen=True)
class KnownSubject:
    """What the listener would query about a newly opened invitation, read by the step itself."""

    brand_id: int | None
    brand_name: str | None
    handle: str
    webhook: bool
    # The way in the influencer chose (`Invitation.path`), if already chosen.
    path: str | None = None


def webhook_of_brand() -> sa.ScalarSelect[bool]:
    """Whether the invitation's brand has a webhook, for a statement that returns an invitation
    row (see `tell_known`)."""
    return (
        sa.select(_brand.c.webhook_url.is_not(None))
        .where(_brand.c.id == _invitation.c.brand_id)
        .scalar_subquery()
    )


def tell_known(s: AsyncSession, invitation_id: int, subject: KnownSubject) -> None:
    """The step read the invitation's brand and handle already (with `webhook_of_brand`): the
    listener uses that instead of a query of its own. For an invitation without a connection
    (just opened); the influencer's steps have a budget of statements (tests/test_statements)."""
    s.sync_session.info.setdefault(_KNOWN, {})[invitation_id] = subject


@event.listens_for(WebhookSession, "before_flush")
def _write_deliveries(session: Session, flush_context: Any, instances: Any) -> None:
    events = [e for e in session.new if isinstance(e, InvitationEvent) and e.kind in _REPORTABLE]
    if not events:
        return
    # In the order they were added: their ids, and so the deliveries' order, follow it.
    events.sort(key=lambda e: getattr(sa.inspect(e), "insert_order", 0) or 0)
    known: dict[int, KnownSubject] = session.info.pop(_KNOWN, {})
    found: dict[int, Any] = {
        i: _KnownRow(k.brand_id, k.brand_name, k.handle, invitation_path=k.path)
        for i, k in known.items()
        if k.webhook and k.brand_id is not None
    }
    invitation_ids = sorted({e.invitation_id for e in events} - known.keys())
    with session.no_autoflush:
        if invitation_ids:
            rows = session.execute(
                sa.select(
                    _invitation.c.id,
                    _invitation.c.handle,
                    _invitation.c.brand_id,
                    _brand.c.name,
                    _invitation.c.path.label("invitation_path"),
                    _invitation.c.step.label("invitation_step"),
                    *(_connection.c[name] for name in _CONNECTION_FIELDS),
                )
                .select_from(
                    _invitation.join(_brand, _brand.c.id == _invitation.c.brand_id).outerjoin(
                        _connection, _connection.c.invitation_id == _invitation.c.id
                    )
                )
                .where(_invitation.c.id.in_(invitation_ids), _brand.c.webhook_url.is_not(None))
            ).all()
            found.update({row.id: row for row in rows})
        if not found:
            return
        # This transaction's own changes to a connection (a revocation's health, say) are not in
        # the database yet.
        pending: dict[int, dict[str, Any]] = {}
        # Likewise the way in chosen in this transaction (the invitation's path).
        chosen: dict[int, tuple[Any, Any]] = {}
        for obj in [*session.identity_map.values(), *session.new]:
            if isinstance(obj, Connection):
                state = sa.inspect(obj).dict
                if state.get("invitation_id") in found:
                    pending[state["invitation_id"]] = state
            elif isinstance(obj, Invitation):
                state = sa.inspect(obj).dict
                if state.get("id") in found and "step" in state:
                    chosen[state["id"]] = state.get("path"), state["step"]
        erased: list[int] = []
        now = utcnow()
        for e in events:
            row = found.get(e.invitation_id)
            if row is None:
                continue
            values = {name: getattr(row, name) for name in _CONNECTION_FIELDS}
            values.update(
                {k: v for k, v in pending.get(e.invitation_id, {}).items() if k in values}
            )
            if values["path"] is None:
                # No connection yet: the way the influencer chose (null before one is chosen).
                path, step = chosen.get(e.invitation_id, (row.invitation_path, row.invitation_step))
                values["path"] = _way(path, step)
            what = reported(
                e.kind, e.status, e.detail, had_connection=values["instagram_id"] is not None
            )
            if what is None:
                continue
            if e.kind == "data_deleted":
                erased.append(e.invitation_id)
            subject = Subject(
                brand_id=row.brand_id,
                brand_name=row.name or "",
                invitation_id=e.invitation_id,
                handle=row.handle,
                status=e.status,
                **values,
            )
            session.add(_delivery_row(what, subject, e.at or now, now))
        if erased:
            # What was delivered about them quoted their Instagram and Page ids.
            session.execute(
                sa.delete(WebhookDelivery).where(
                    col(WebhookDelivery.invitation_id).in_(erased),
                    col(WebhookDelivery.status) != PENDING,
                )
            )


@dataclass(frozen=True)
class _KnownRow:
    brand_id: int
    name: str | None
    handle: str
    instagram_id: None = None
    instagram_username: None = None
    page_id: None = None
    health: None = None
    path: None = None  # the connection's: there is none yet
    invitation_path: str | None = None
    invitation_step: str | None = None


def _way(path: str | None, step: str | None) -> str | None:
    """The way an invitation without a connection is on: the one chosen; else, past the
    question which way fits (or where there was none: one way open), Facebook's (a NULL path
    is Facebook's once the steps have begun, as in `bot.store.steps`); None before."""
    if path is not None:
        return str(path)
    if step is None or step in (Step.WELCOME, Step.PATH):
        return None
    return LoginPath.FACEBOOK.value


def _delivery_row(what: Reported, subject: Subject, at: datetime, now: datetime) -> WebhookDelivery:
    event_id = new_event_id()
    return WebhookDelivery(
        event_id=event_id,
        brand_id=subject.brand_id,
        invitation_id=subject.invitation_id,
        type=str(what.type),
        body=body(event_id, what, at, subject),
        due_at=now,
        created_at=now,
    )


@dataclass(frozen=True)
class Claimed:
    """One delivery taken by the sender, with where it goes and the sealed signing secret (None:
    the brand's webhook was removed meanwhile)."""

    id: int
    event_id: str
    type: str
    body: str
    attempts: int  # this one included
    created_at: datetime
    brand_id: int
    url: str | None
    secret_sealed: str | None


class Webhooks(Repository):
    async def set_webhook(self, brand_id: int, *, url: str, secret_sealed: str) -> bool:
        """A new URL and signing secret (False: no such brand)."""
        async with self.session() as s, s.begin():
            done = await s.exec(
                sa.update(Brand)
                .where(col(Brand.id) == brand_id)
                .values(
                    webhook_url=url, webhook_secret_sealed=secret_sealed, webhook_set_at=utcnow()
                )
            )
            return bool(done.rowcount)

    async def rotate_secret(self, brand_id: int, *, secret_sealed: str) -> bool:
        """A new signing secret for the brand's webhook (False: it has none)."""
        async with self.session() as s, s.begin():
            done = await s.exec(
                sa.update(Brand)
                .where(col(Brand.id) == brand_id, col(Brand.webhook_url).is_not(None))
                .values(webhook_secret_sealed=secret_sealed, webhook_set_at=utcnow())
            )
            return bool(done.rowcount)

    async def remove_webhook(self, brand_id: int) -> int:
        """No more webhook: what still waits is given up. Returns how many were waiting."""
        async with self.session() as s, s.begin():
            await s.exec(
                sa.update(Brand)
                .where(col(Brand.id) == brand_id)
                .values(webhook_url=None, webhook_secret_sealed=None, webhook_set_at=None)
            )
            dropped = await s.exec(
                sa.update(WebhookDelivery)
                .where(
                    col(WebhookDelivery.brand_id) == brand_id,
                    col(WebhookDelivery.status) == PENDING,
                )
                .values(status=FAILED, last_error="removed")
            )
            return int(dropped.rowcount or 0)

    async def recent(self, brand_id: int, *, limit: int) -> list[WebhookDelivery]:
        """The brand's newest deliveries, newest first."""
        async with self.session() as s:
            return list(
                await s.exec(
                    select(WebhookDelivery)
                    .where(col(WebhookDelivery.brand_id) == brand_id)
                    .order_by(col(WebhookDelivery.id).desc())
                    .limit(limit)
                )
            )

    async def add_ping(self, brand_id: int, brand_name: str) -> str | None:
        """A `ping` event for the brand's webhook; its event id (None: no webhook)."""
        now = utcnow()
        async with self.session() as s, s.begin():
            brand = await s.get(Brand, brand_id)
            if brand is None or brand.webhook_url is None:
                return None
            row = _delivery_row(Reported(WebhookType.PING), Subject(brand_id, brand_name), now, now)
            s.add(row)
            return row.event_id

    async def claim_due(self, *, now: datetime, limit: int, hold: datetime) -> list[Claimed]:
        """Up to `limit` due deliveries, each the oldest pending one of its invitation, claimed by
        moving them to `hold` and counting the attempt."""
        earlier = _delivery.alias("earlier")
        due = (
            sa.select(_delivery.c.id)
            .where(
                _delivery.c.status == PENDING,
                _delivery.c.due_at <= now,
                ~sa.exists().where(
                    earlier.c.invitation_id == _delivery.c.invitation_id,
                    earlier.c.status == PENDING,
                    earlier.c.id < _delivery.c.id,
                ),
            )
            .order_by(_delivery.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=_delivery)
        )
        async with self.session() as s:
            # A read first: an idle sender (most rounds, every second) takes no write lock
            # (SQLite's is the whole database's) and writes nothing.
            anything = (
                await (await s.connection()).execute(
                    sa.select(_delivery.c.id)
                    .where(_delivery.c.status == PENDING, _delivery.c.due_at <= now)
                    .limit(1)
                )
            ).first()
        if anything is None:
            return []
        async with self.session() as s, s.begin():
            conn = await s.connection()
            claimed = (
                await conn.execute(
                    sa.update(WebhookDelivery)
                    .where(col(WebhookDelivery.id).in_(due.scalar_subquery()))
                    .values(due_at=hold, attempts=col(WebhookDelivery.attempts) + 1)
                    .returning(col(WebhookDelivery.id))
                )
            ).all()
            ids = sorted(row[0] for row in claimed if row[0] is not None)
            if not ids:
                return []
            rows = (
                await conn.execute(
                    sa.select(
                        _delivery.c.id,
                        _delivery.c.event_id,
                        _delivery.c.type,
                        _delivery.c.body,
                        _delivery.c.attempts,
                        _delivery.c.created_at,
                        _delivery.c.brand_id,
                        _brand.c.webhook_url.label("url"),
                        _brand.c.webhook_secret_sealed.label("secret_sealed"),
                    )
                    .select_from(_delivery.join(_brand, _brand.c.id == _delivery.c.brand_id))
                    .where(_delivery.c.id.in_(ids))
                    .order_by(_delivery.c.id)
                )
            ).all()
        return [Claimed(**row._mapping) for row in rows]

    async def delivered(self, delivery_id: int, *, status_code: int) -> None:
        await self._finish(
            delivery_id,
            status=DELIVERED,
            delivered_at=utcnow(),
            last_status_code=status_code,
            last_error=None,
        )

    async def retry(
        self, delivery_id: int, *, at: datetime, status_code: int | None, error: str
    ) -> None:
        await self._finish(
            delivery_id, due_at=at, last_status_code=status_code, last_error=error[:_ERROR_MAX]
        )

    async def give_up(self, delivery_id: int, *, status_code: int | None, error: str) -> None:
        await self._finish(
            delivery_id, status=FAILED, last_status_code=status_code, last_error=error[:_ERROR_MAX]
        )

    async def release(self, delivery_ids: Sequence[int], *, now: datetime) -> None:
        """Claims given back unfinished (the process stops): due again at once, same event id."""
        if delivery_ids:
            async with self.session() as s, s.begin():
                await s.exec(
                    sa.update(WebhookDelivery)
                    .where(
                        col(WebhookDelivery.id).in_(delivery_ids),
                        col(WebhookDelivery.status) == PENDING,
                    )
                    .values(due_at=now)
                )

    async def prune(self, *, before: datetime) -> int:
        """Finished deliveries quote Instagram and Page ids: kept only while useful to look at."""
        async with self.session() as s, s.begin():
            result = await s.exec(
                sa.delete(WebhookDelivery).where(
                    col(WebhookDelivery.status) != PENDING,
                    col(WebhookDelivery.created_at) < before,
                )
            )
            return int(result.rowcount or 0)

    async def _finish(self, delivery_id: int, **values: object) -> None:
        async with self.session() as s, s.begin():
            await s.exec(
                sa.update(WebhookDelivery)
                .where(
                    col(WebhookDelivery.id) == delivery_id, col(WebhookDelivery.status) == PENDING
                )
                .values(**values)
            )
