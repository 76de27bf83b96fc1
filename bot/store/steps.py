"""The influencer's steps, each one transaction of at most four statements.

A step reads what it needs and moves the invitation in one conditional `UPDATE … RETURNING`, whose
returned row carries what the following screens need (the brand's name, and who owns the manager's
card and in which language); the person's language comes back from the same transaction (an upsert
of the person), and the step's event and the card's refresh are written with it:

1. upsert the person (their Telegram language) RETURNING their chosen language;
2. UPDATE the invitation … RETURNING it, with the brand's name and the card owner's particulars;
3. INSERT the event;
4. INSERT the card's refresh into the outbox (rendered, without a query, from the returned row).

A step that does not apply (a stale or doubled tap, a link someone else opened) reads the invitation
once more to say why, and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.crypto import secret_hash
from bot.models import (
    Brand,
    Invitation,
    InviteStatus,
    LoginAttempt,
    Manager,
    Person,
    Step,
    utcnow,
)
from bot.store.base import Repository
from bot.store.events import EventKind, new_event
from bot.store.invitations import OPEN_STATUSES, BindProblem, Bound
from bot.store.outbox import Outgoing, enqueue_in


@dataclass(frozen=True)
class CardOwner:
    """The manager who invited, as the card refresh needs them: the brand they manage now
    (None: no manager any more), their languages, and the invitation's failed logins."""

    brand_id: int | None
    language: str | None
    telegram_language: str | None
    failed_logins: int


# Renders the manager's card refresh for the invitation as just returned (pure: no query).
CardRefresh = Callable[[Invitation, CardOwner], Sequence[Outgoing]]


@dataclass(frozen=True)
class Opened:
    """`/start <token>`: the invitation bound (or the problem), and the person's language."""

    result: Bound | BindProblem
    language: str | None  # the person's chosen language (None: Telegram's decides)
    brand_name: str | None = None
    refreshed: bool = False  # the card's refresh went to the outbox


@dataclass(frozen=True)
class Answered:
    """A check answered: whether it moved the step, the invitation as it is now (None: not this
    person's), and the person's language."""

    moved: bool
    invitation: Invitation | None
    language: str | None
    refreshed: bool = False


def _returned_with_context() -> tuple[Any, ...]:
    """What the UPDATE returns besides the invitation: the brand's name, and the card owner's
    brand, languages and the invitation's failed logins (for the card's status line)."""
    owner = Invitation.created_by
    return (
        select(Brand.name).where(col(Brand.id) == col(Invitation.brand_id)).scalar_subquery(),
        select(Manager.brand_id).where(col(Manager.telegram_id) == owner).scalar_subquery(),
        select(Person.language).where(col(Person.telegram_id) == owner).scalar_subquery(),
        select(Person.telegram_language)
        .where(col(Person.telegram_id) == owner)
        .scalar_subquery(),
        select(sa.func.count())
        .select_from(LoginAttempt)
        .where(
            col(LoginAttempt.invitation_id) == col(Invitation.id),
            col(LoginAttempt.used_at).is_not(None),
            sa.or_(
                col(LoginAttempt.outcome).is_(None),
                col(LoginAttempt.outcome).not_in(("connected", "withdrawn")),
            ),
        )
        .scalar_subquery(),
    )


class Steps(Repository):
    async def open_link(
        self,
        *,
        token: str,
        telegram_user_id: int,
        telegram_language: str | None,
        card: CardRefresh,
    ) -> Opened:
        """Bind the invitation behind `token` to this person, once (see
        `Invitations.bind_invitation` for the rules); on the first opening, its event and the
        card's refresh are written in the same transaction."""
        now = utcnow()
        token_hash = secret_hash(token)
        async with self.session() as s:
            language = await _remember(s, telegram_user_id, telegram_language, now)
            bind = (
                sa.update(Invitation)
                .where(
                    col(Invitation.token_hash) == token_hash,
                    col(Invitation.telegram_user_id).is_(None),
                    col(Invitation.status) == InviteStatus.PENDING,
                    col(Invitation.expires_at) > now,
                )
                .values(
                    telegram_user_id=telegram_user_id,
                    status=InviteStatus.OPENED,
                    step=Step.PAGE_PUBLIC,
                    updated_at=now,
                )
                .returning(Invitation, *_returned_with_context())
                .execution_options(synchronize_session=False)
            )
            row = (await s.exec(bind)).first()
            if row is None:
                invite = (
                    await s.exec(select(Invitation).where(Invitation.token_hash == token_hash))
                ).first()
                await s.commit()  # the person's language, noted
                return Opened(_why_not(invite, telegram_user_id, now), language)
            invite, brand_name, owner = _unpack(row)
            assert invite.id is not None
            s.add(new_event(invite.id, EventKind.OPENED, InviteStatus.OPENED, at=now))
            edits = card(invite, owner)
            enqueue_in(s, edits, now)
            await s.commit()
            return Opened(Bound(invite, fresh=True), language, brand_name, bool(edits))

    async def answer_check(
        self,
        *,
        invitation_id: int,
        telegram_user_id: int,
        telegram_language: str | None,
        from_step: Step,
        to_step: Step,
        detail: str,
        card: CardRefresh,
    ) -> Answered:
        """Compare-and-set of the flow step (a stale or doubled tap changes nothing), with its
        event and the card's refresh in the same transaction."""
        now = utcnow()
        async with self.session() as s:
            language = await _remember(s, telegram_user_id, telegram_language, now)
            move = (
                sa.update(Invitation)
                .where(
                    col(Invitation.id) == invitation_id,
                    col(Invitation.telegram_user_id) == telegram_user_id,
                    col(Invitation.step) == from_step,
                    col(Invitation.status).in_(OPEN_STATUSES),
                )
                .values(step=to_step, updated_at=now)
                .returning(Invitation, *_returned_with_context())
                .execution_options(synchronize_session=False)
            )
            row = (await s.exec(move)).first()
            if row is None:
                invite = await s.get(Invitation, invitation_id)
                await s.commit()  # the person's language, noted
                if invite is None or invite.telegram_user_id != telegram_user_id:
                    invite = None
                return Answered(False, invite, language)
            invite, _, owner = _unpack(row)
            assert invite.id is not None
            status = InviteStatus(invite.status)
            s.add(new_event(invite.id, EventKind.CHECK_PASSED, status, detail, at=now))
            edits = card(invite, owner)
            enqueue_in(s, edits, now)
            await s.commit()
            return Answered(True, invite, language, bool(edits))


async def _remember(
    s: AsyncSession, telegram_id: int, telegram_language: str | None, now: datetime
) -> str | None:
    """Note the person's Telegram language; their chosen language (one upsert)."""
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(Person).values(
        telegram_id=telegram_id, telegram_language=telegram_language, created_at=now
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[col(Person.telegram_id)],
        set_={"telegram_language": stmt.excluded.telegram_language},
    ).returning(col(Person.language))
    language: str | None = (await s.exec(upsert)).scalar_one()
    return language


def _unpack(row: sa.Row[Any]) -> tuple[Invitation, str | None, CardOwner]:
    invite, brand_name, owner_brand, owner_language, owner_seen, failures = tuple(row)
    assert isinstance(invite, Invitation)
    return invite, brand_name, CardOwner(owner_brand, owner_language, owner_seen, failures or 0)


def _why_not(
    invite: Invitation | None, telegram_user_id: int, now: datetime
) -> Bound | BindProblem:
    """Why a link did not bind (or that it is this person's already: opened again)."""
    if invite is None:
        return BindProblem.UNKNOWN
    if invite.status == InviteStatus.REVOKED:
        return BindProblem.REVOKED
    if invite.telegram_user_id not in (None, telegram_user_id):
        return BindProblem.TAKEN
    if invite.telegram_user_id is None:
        return BindProblem.EXPIRED  # pending and unbound, yet the update missed: expired
    if invite.status != InviteStatus.CONNECTED and invite.expires_at <= now:
        return BindProblem.EXPIRED
    return Bound(invite, fresh=False)


__all__ = ["Answered", "CardOwner", "CardRefresh", "Opened", "Steps"]
