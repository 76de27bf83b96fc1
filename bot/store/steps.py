"""The influencer's steps, each one transaction of at most four statements.

A step reads what it needs and moves the invitation in one conditional `UPDATE … RETURNING`, whose
returned row carries what the following screens need (the brand's name, and who owns the manager's
card and in which language); the person's language comes back from the same transaction (an upsert
of the person), and the step's event and the card's refresh are written with it:

1. upsert the person (their Telegram language) RETURNING their chosen language;
2. UPDATE the invitation … RETURNING it, with the brand's name and the card owner's particulars;
3. INSERT the event;
4. INSERT the card's refresh into the outbox (rendered, without a query, from the returned row).

A check answered needs no upsert of the person: the UPDATE returns their languages too (a changed
Telegram language is noted behind, `bot.store.notes`), and it carries the newest noted message
of the step along. The answer that reaches the login issues the first login state in the same
transaction (the invitation's status, both events in one INSERT, the login attempt, the card's
refresh: four statements); no older state can be live then, since a state is issued only at the
login step, and the one way back from it (a failed Facebook login switching to Instagram Login,
`Steps.switch_to_instagram`) supersedes every unused state of the invitation as it goes, and takes
any login button still shown off its message (the one step of more statements: it is rare).

Where both ways in are open (`bot.paths`), the first step is the question which one fits; the
answer records the invitation's path with the step, in the same compare-and-set. A move onto a way
in is conditional on the brand still allowing it (an admin may change that meanwhile).

A step that does not apply (a stale or doubled tap, a link someone else opened) reads the invitation
once more to say why, and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.crypto import secret_hash
from bot.models import (
    Brand,
    BrandPaths,
    Invitation,
    InvitationEvent,
    InviteStatus,
    LoginAttempt,
    LoginPath,
    Manager,
    Person,
    Step,
    utcnow,
)
from bot.store.base import Repository
from bot.store.events import EventKind, new_event
from bot.store.invitations import OPEN_STATUSES, BindProblem, Bound
from bot.store.logins import LoginTicket, login_buttons_off
from bot.store.notes import NoteWriter, higher
from bot.store.outbox import Outgoing, enqueue_in
from bot.store.webhooks import KnownSubject, tell_known, webhook_of_brand


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
class NewLogin:
    """A login state made ready (not stored yet) for the answer that may reach the login step:
    the state, sealed so that the same button can be shown again, and how long it lives."""

    state: str
    sealed: str | None
    ttl: timedelta


@dataclass(frozen=True)
class Answered:
    """A check answered: whether it moved the step, the invitation as it is now (None: not this
    person's), and the person's language; the login state issued with the step, if it reached
    the login."""

    moved: bool
    invitation: Invitation | None
    language: str | None
    refreshed: bool = False
    ticket: LoginTicket | None = None
    # The invitation's brand's `login_paths` as read with it (None: no brand).
    login_paths: str | None = None


def _returned_with_context() -> tuple[Any, ...]:
    """What the UPDATE returns besides the invitation: the brand's name, and the card owner's
    brand, languages and the invitation's failed logins (for the card's status line)."""
    owner = Invitation.created_by
    return (
        select(Brand.name).where(col(Brand.id) == col(Invitation.brand_id)).scalar_subquery(),
        select(Manager.brand_id).where(col(Manager.telegram_id) == owner).scalar_subquery(),
        select(Person.language).where(col(Person.telegram_id) == owner).scalar_subquery(),
        select(Person.telegram_language).where(col(Person.telegram_id) == owner).scalar_subquery(),
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


def _brand_paths() -> Any:
    """The invitation's brand's `login_paths`, as a scalar subquery ("both" without a brand)."""
    return sa.func.coalesce(
        select(Brand.login_paths)
        .where(col(Brand.id) == col(Invitation.brand_id))
        .scalar_subquery(),
        BrandPaths.BOTH.value,
    )


def _first_step_values(first: Mapping[str, tuple[Step, LoginPath | None]]) -> dict[str, Any]:
    """The step (and path) an opened invitation starts at, by its brand's `login_paths`
    (`bot.paths.first_steps`): plain values where every brand starts alike (the Facebook path
    alone: the statement is the same as before there was a second way in)."""
    starts = set(first.values())
    if len(starts) <= 1:
        step, path = starts.pop() if starts else (Step.PAGE_PUBLIC, None)
        values: dict[str, Any] = {"step": step}
        if path is not None:
            values["path"] = path
        return values
    paths = _brand_paths()
    return {
        "step": sa.case(
            {v: step.value for v, (step, _) in first.items()}, value=paths, else_=Step.PAGE_PUBLIC
        ),
        "path": sa.case(
            {v: path.value for v, (_, path) in first.items() if path is not None},
            value=paths,
            else_=None,
        ),
    }


def _person_languages() -> tuple[Any, ...]:
    """What an answer's UPDATE returns of the person answering: their chosen language and the
    Telegram language last noted (NULL, NULL: no row)."""
    person = col(Person.telegram_id) == col(Invitation.telegram_user_id)
    return (
        select(Person.language).where(person).scalar_subquery(),
        select(Person.telegram_language).where(person).scalar_subquery(),
    )


class Steps(Repository):
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessions)
        # Which message carries a step's or a login's buttons, written behind (its writer is
        # started and stopped by the composition root).
        self.notes = NoteWriter(sessions)

    async def open_link(
        self,
        *,
        token: str,
        telegram_user_id: int,
        telegram_language: str | None,
        card: CardRefresh,
        first: Mapping[str, tuple[Step, LoginPath | None]] | None = None,
    ) -> Opened:
        """Bind the invitation behind `token` to this person, once (see
        `Invitations.bind_invitation` for the rules); on the first opening, its event and the
        card's refresh are written in the same transaction. `first`: where it starts by its
        brand's `login_paths` (`bot.paths.first_steps`; None: the Facebook path's first check)."""
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
                    updated_at=now,
                    **_first_step_values(first or {}),
                )
                .returning(Invitation, *_returned_with_context(), webhook_of_brand())
                .execution_options(synchronize_session=False)
            )
            row = (await s.exec(bind)).first()
            if row is None:
                invite = (
                    await s.exec(select(Invitation).where(Invitation.token_hash == token_hash))
                ).first()
                await s.commit()  # the person's language, noted
                return Opened(_why_not(invite, telegram_user_id, now), language)
            *returned, webhook = tuple(row)
            invite, brand_name, owner = _unpack(returned)
            assert invite.id is not None
            # The platform's webhook hears of the opening without a query of its own.
            known = KnownSubject(invite.brand_id, brand_name, invite.handle, bool(webhook))
            tell_known(s, invite.id, known)
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
        login: NewLogin | None = None,
        path: LoginPath | None = None,
        open_for: Collection[str] | None = None,
        kind: EventKind = EventKind.CHECK_PASSED,
    ) -> Answered:
        """Compare-and-set of the flow step (a stale or doubled tap changes nothing), with its
        event (`kind`) and the card's refresh in the same transaction; reaching the login step
        with `login`, that state is issued in it too (`Answered.ticket`). `path`: the way in
        chosen with it, only while the brand's `login_paths` is one of `open_for`
        (`bot.paths.brand_values_opening`)."""
        now = utcnow()
        login = login if to_step == Step.LOGIN else None
        values: dict[str, Any] = {"step": to_step, "updated_at": now}
        if path is not None:
            values["path"] = path
        conditions = [] if open_for is None else [_brand_paths().in_(sorted(open_for))]
        if login is not None:
            values["status"] = InviteStatus.LOGIN_STARTED
        shown = self.notes.step_message(invitation_id)
        if shown is not None:
            values["step_message_id"] = higher(col(Invitation.step_message_id), shown)
        async with self.session() as s:
            move = (
                sa.update(Invitation)
                .where(
                    col(Invitation.id) == invitation_id,
                    col(Invitation.telegram_user_id) == telegram_user_id,
                    col(Invitation.step) == from_step,
                    col(Invitation.status).in_(OPEN_STATUSES),
                    *conditions,
                )
                .values(**values)
                .returning(
                    Invitation, *_returned_with_context(), *_person_languages(), _brand_paths()
                )
                .execution_options(synchronize_session=False)
            )
            row = (await s.exec(move)).first()
            if row is None:
                return await _not_moved(s, invitation_id, telegram_user_id, telegram_language, now)
            *returned, language, seen, login_paths = tuple(row)
            invite, _, owner = _unpack(returned)
            assert invite.id is not None
            if login is None:
                status = InviteStatus(invite.status)
                s.add(new_event(invite.id, kind, status, detail, at=now))
                ticket = None
            else:
                # At the page-linked step the invitation is opened (a login starts it only at
                # the login step): the check passed there, then the login started.
                # The timeline names the window of an Instagram Login ("instagram"), as
                # `bot.store.logins` does for the later ones.
                window = LoginPath.INSTAGRAM.value if invite.path == LoginPath.INSTAGRAM else None
                events = [
                    new_event(invite.id, EventKind.CHECK_PASSED, InviteStatus.OPENED, detail),
                    new_event(
                        invite.id, EventKind.LOGIN_STARTED, InviteStatus.LOGIN_STARTED, window
                    ),
                ]
                await s.exec(
                    sa.insert(InvitationEvent).values(
                        [e.model_dump(exclude={"id"}) | {"at": now} for e in events]
                    )
                )
                ticket = await _issue_first_login(s, invite, login, now)
            edits = card(invite, owner)
            enqueue_in(s, edits, now)
            await s.commit()
        if shown is not None:
            self.notes.step_written(invitation_id, shown)
        if seen != telegram_language or (language is None and seen is None):
            # Another Telegram language than noted, or perhaps no row yet (the note makes it).
            self.notes.note_telegram_language(telegram_user_id, telegram_language)
        return Answered(True, invite, language, bool(edits), ticket, login_paths)

    async def switch_to_instagram(
        self,
        *,
        invitation_id: int,
        telegram_user_id: int,
        telegram_language: str | None,
        open_for: Collection[str],
        card: CardRefresh,
    ) -> Answered:
        """ "Connect with Instagram instead" under a failed Facebook login: the invitation goes
        from the login step back to the Instagram path's check (opened again), only from a
        failed Facebook login and only while the brand allows Instagram Login (`open_for`, as
        in `answer_check`). Every unused login state of the invitation is superseded with it,
        so that the Instagram path's login is again the first live one, and a Facebook login
        button still on a message is taken off (through the outbox, with the card's refresh).
        A stale or doubled tap changes nothing (`Answered.moved` False, the invitation as it
        is)."""
        # The login buttons are read from the database below: the ones noted, written first
        # (`bot.store.notes`; nothing to write in the ordinary case).
        await self.notes.flush()
        now = utcnow()
        values: dict[str, Any] = {
            "step": Step.IG_PROFESSIONAL,
            "path": LoginPath.INSTAGRAM,
            "status": InviteStatus.OPENED,
            "updated_at": now,
        }
        async with self.session() as s:
            move = (
                sa.update(Invitation)
                .where(
                    col(Invitation.id) == invitation_id,
                    col(Invitation.telegram_user_id) == telegram_user_id,
                    col(Invitation.step) == Step.LOGIN,
                    col(Invitation.status) == InviteStatus.FAILED,
                    sa.func.coalesce(col(Invitation.path), LoginPath.FACEBOOK.value)
                    == LoginPath.FACEBOOK.value,
                    _brand_paths().in_(sorted(open_for)),
                )
                .values(**values)
                .returning(
                    Invitation, *_returned_with_context(), *_person_languages(), _brand_paths()
                )
                .execution_options(synchronize_session=False)
            )
            row = (await s.exec(move)).first()
            if row is None:
                return await _not_moved(s, invitation_id, telegram_user_id, telegram_language, now)
            *returned, language, seen, login_paths = tuple(row)
            invite, _, owner = _unpack(returned)
            assert invite.id is not None
            await s.exec(
                sa.update(LoginAttempt)
                .where(
                    col(LoginAttempt.invitation_id) == invite.id,
                    col(LoginAttempt.used_at).is_(None),
                    col(LoginAttempt.superseded_at).is_(None),
                )
                # As `bot.store.logins` supersedes: nothing kept that could still complete it.
                .values(
                    superseded_at=now, state_sealed=None, confirm_hash=None, pending_sealed=None
                )
            )
            # The Facebook login's button still on a message (its note written after the
            # verdict took the buttons off) goes too, as when a login is superseded.
            buttons_off = await login_buttons_off(s, invite.id)
            s.add(
                new_event(
                    invite.id,
                    EventKind.CHECK_ANSWERED,
                    InviteStatus.OPENED,
                    f"{Step.LOGIN.value}:{LoginPath.INSTAGRAM.value}",
                    at=now,
                )
            )
            edits = card(invite, owner)
            enqueue_in(s, [*edits, *buttons_off], now)
            await s.commit()
        if seen != telegram_language or (language is None and seen is None):
            self.notes.note_telegram_language(telegram_user_id, telegram_language)
        return Answered(True, invite, language, bool(edits or buttons_off), None, login_paths)


async def _not_moved(
    s: AsyncSession,
    invitation_id: int,
    telegram_user_id: int,
    telegram_language: str | None,
    now: datetime,
) -> Answered:
    """A step that did not move: the invitation as it is (None: not this person's) with its
    brand's `login_paths`, and the person's language (their Telegram language noted)."""
    language = await _remember(s, telegram_user_id, telegram_language, now)
    found = (
        await s.exec(
            select(Invitation, Brand.login_paths)
            .join(Brand, col(Brand.id) == col(Invitation.brand_id), isouter=True)
            .where(col(Invitation.id) == invitation_id)
        )
    ).first()
    await s.commit()  # the person's language, noted
    if found is None or found[0].telegram_user_id != telegram_user_id:
        return Answered(False, None, language)
    invite, login_paths = found
    return Answered(False, invite, language, login_paths=login_paths or BrandPaths.BOTH.value)


async def _issue_first_login(
    s: AsyncSession, invite: Invitation, login: NewLogin, now: datetime
) -> LoginTicket:
    """The invitation's first login state (nothing to supersede: see the module's docstring)."""
    assert invite.id is not None
    issued = await s.exec(
        sa.insert(LoginAttempt)
        .values(
            invitation_id=invite.id,
            telegram_user_id=invite.telegram_user_id,
            state_hash=secret_hash(login.state),
            # The way in the invitation is on: its login window is that app's.
            path=invite.path or LoginPath.FACEBOOK,
            rerequest=False,
            created_at=now,
            expires_at=now + login.ttl,
            state_sealed=login.sealed,
        )
        .returning(col(LoginAttempt.id))
    )
    return LoginTicket(int(issued.scalar_one()), login.state, reused=False)


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


def _unpack(row: Sequence[Any]) -> tuple[Invitation, str | None, CardOwner]:
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


__all__ = ["Answered", "CardOwner", "CardRefresh", "NewLogin", "Opened", "Steps"]
