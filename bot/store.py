"""The one module that talks to the database.

Every function is one transaction. State changes that must not race (binding an invitation,
consuming an OAuth state, moving a flow step) are single conditional UPDATEs, so two updates of one
person, or two callbacks with one state, cannot both win — on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.crypto import new_invitation_token, new_secret, secret_hash
from bot.facts import VerdictFacts, was_announced
from bot.login_secrets import LoginSealer
from bot.models import (
    Connection,
    Invitation,
    InvitationEvent,
    InviteStatus,
    LoginAttempt,
    OutboxAudience,
    OutboxKind,
    OutboxMessage,
    OutboxStatus,
    Person,
    Step,
    TelegramUpdate,
    utcnow,
)
from bot.store_console import ConsoleQueries
from bot.store_privacy import PrivacyQueries

_MIGRATIONS = Path(__file__).parent / "migrations"


class BindProblem(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REVOKED = "revoked"
    TAKEN = "taken"  # bound to another Telegram account


class StateProblem(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    WITHDRAWN = "withdrawn"  # the invitation was withdrawn (or forgotten) meanwhile
    SUPERSEDED = "superseded"  # a newer login button was issued for the invitation
    CONNECTED = "connected"  # the invitation is connected already: nothing to log in for


@dataclass(frozen=True)
class LoginTicket:
    """A login state handed out (fresh, or the live one shown again)."""

    attempt_id: int
    state: str
    reused: bool
    # (chat id, message id) of the messages whose login buttons the new state replaced.
    stale_buttons: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class PendingConfirmation:
    """A redirect waiting for its confirmation, taken (once) by the confirmation."""

    attempt: LoginAttempt
    invitation: Invitation
    pending_sealed: str | None


@dataclass(frozen=True)
class Outgoing:
    """A message to write to the outbox in the same transaction as the event causing it."""

    chat_id: int
    text: str
    keyboard: str | None = None  # InlineKeyboardMarkup as JSON
    kind: OutboxKind = OutboxKind.SEND
    edit_message_id: int | None = None
    invitation_id: int | None = None
    delay: timedelta = timedelta(0)  # lets notices gather, to go out combined
    # For a brand's people: delivered only while this still holds (see OutboxAudience).
    audience: OutboxAudience | None = None
    brand_id: int | None = None
    manager_id: int | None = None


@dataclass(frozen=True)
class Bound:
    invitation: Invitation
    fresh: bool  # False when the same person opened the link again


@dataclass(frozen=True)
class ConnectionRecord:
    facebook_user_id: str
    page_id: str
    page_name: str
    instagram_id: str
    instagram_username: str
    followers_count: int | None
    permissions: Sequence[str]
    token_encrypted: str | None
    token_expires_at: datetime | None
    data_access_expires_at: datetime | None


class Database(ConsoleQueries, PrivacyQueries):
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            # One writer at a time: wait for the lock instead of failing with "database is locked".
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, echo=echo, **kwargs)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    def session(self) -> AsyncSession:
        return self._sessions()

    async def migrate(self) -> None:
        """Apply Alembic migrations up to head on this engine's database."""

        def upgrade(sync_conn: sa.Connection) -> None:
            cfg = Config()
            cfg.set_main_option("script_location", str(_MIGRATIONS))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)

    async def dispose(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(2):
                async with self.engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:
            return False

    # --- people ------------------------------------------------------------------------------

    async def language_of(self, telegram_id: int) -> tuple[str | None, str | None]:
        """(chosen language, last seen Telegram language) of a person."""
        async with self.session() as s:
            person = await s.get(Person, telegram_id)
            return (person.language, person.telegram_language) if person else (None, None)

    async def remember_person(
        self, telegram_id: int, *, telegram_language: str | None
    ) -> str | None:
        """Note the person's Telegram language (needed to write to them later, e.g. a manager's
        notification); returns their chosen language. Writes only when something changed."""
        async with self.session() as s:
            person = await s.get(Person, telegram_id)
            if person is not None and person.telegram_language == telegram_language:
                return person.language
            if person is None:
                person = Person(telegram_id=telegram_id, telegram_language=telegram_language)
            else:
                person.telegram_language = telegram_language
            s.add(person)
            try:
                await s.commit()
            except sa.exc.IntegrityError:
                # The same person's other update inserted them first: nothing to add.
                await s.rollback()
            return person.language

    async def set_language(self, telegram_id: int, language: str) -> None:
        async with self.session() as s:
            person = await s.get(Person, telegram_id) or Person(telegram_id=telegram_id)
            person.language = language
            s.add(person)
            await s.commit()

    # --- invitations -------------------------------------------------------------------------

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
            s.add(_event(invite.id, "created", InviteStatus.PENDING, f"@{handle}"))
            await s.commit()
        return invite, token

    async def get_invitation(self, invitation_id: int) -> Invitation | None:
        async with self.session() as s:
            return await s.get(Invitation, invitation_id)

    async def bind_invitation(self, *, token: str, telegram_user_id: int) -> Bound | BindProblem:
        """Bind the invitation behind `token` to this person, once. Re-opening by the same person
        is fine and changes nothing; anyone else is refused."""
        now = utcnow()
        token_hash = secret_hash(token)
        async with self.session() as s:
            result = await s.exec(
                sa.update(Invitation)  # type: ignore[call-overload]
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
            )
            invite = (
                await s.exec(select(Invitation).where(Invitation.token_hash == token_hash))
            ).first()
            if invite is None:
                return BindProblem.UNKNOWN
            if result.rowcount == 1:
                assert invite.id is not None
                s.add(_event(invite.id, "opened", InviteStatus.OPENED, None))
                await s.commit()
                return Bound(invite, fresh=True)
            # Nothing was changed; leaving the block rolls back. Read `invite` as loaded.
            if invite.status == InviteStatus.REVOKED:
                return BindProblem.REVOKED
            if invite.telegram_user_id not in (None, telegram_user_id):
                return BindProblem.TAKEN
            if invite.telegram_user_id is None:
                # Pending and unbound, yet the update missed: only expiry is left.
                return BindProblem.EXPIRED
            if invite.status != InviteStatus.CONNECTED and invite.expires_at <= now:
                return BindProblem.EXPIRED
            return Bound(invite, fresh=False)

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

    async def advance(
        self,
        *,
        invitation_id: int,
        telegram_user_id: int,
        from_step: Step,
        to_step: Step,
        event: str,
        detail: str | None = None,
    ) -> bool:
        """Compare-and-set of the flow step: a stale or duplicated button press changes nothing."""
        async with self.session() as s:
            result = await s.exec(
                sa.update(Invitation)  # type: ignore[call-overload]
                .where(
                    col(Invitation.id) == invitation_id,
                    col(Invitation.telegram_user_id) == telegram_user_id,
                    col(Invitation.step) == from_step,
                    col(Invitation.status).in_(_OPEN_STATUSES),
                )
                .values(step=to_step, updated_at=utcnow())
            )
            if result.rowcount != 1:
                await s.rollback()
                return False
            invite = await s.get(Invitation, invitation_id)
            assert invite is not None
            s.add(_event(invitation_id, event, InviteStatus(invite.status), detail))
            await s.commit()
            return True

    async def claim_step_repeat(self, *, invitation_id: int, quiet_since: datetime) -> bool:
        """True if the current step may be shown again in full: it was neither reached nor
        repeated after `quiet_since`. Marks the repeat, so of two messages only one wins."""
        now = utcnow()
        async with self.session() as s:
            result = await s.exec(
                sa.update(Invitation)  # type: ignore[call-overload]
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

    async def record_event(
        self, *, invitation_id: int, kind: str, detail: str | None = None
    ) -> None:
        async with self.session() as s:
            invite = await s.get(Invitation, invitation_id)
            if invite is None:
                return
            s.add(_event(invitation_id, kind, InviteStatus(invite.status), detail))
            await s.commit()

    async def events(self, invitation_id: int) -> list[InvitationEvent]:
        async with self.session() as s:
            rows = await s.exec(
                select(InvitationEvent)
                .where(InvitationEvent.invitation_id == invitation_id)
                .order_by(col(InvitationEvent.id))
            )
            return list(rows)

    # --- login attempts ----------------------------------------------------------------------

    async def start_login(
        self, *, invitation_id: int, telegram_user_id: int, ttl: timedelta, rerequest: bool
    ) -> str | None:
        """A fresh single-use OAuth state for this invitation and person; None if the invitation
        is not at the login step any more."""
        ticket = await self.issue_login(
            invitation_id=invitation_id,
            telegram_user_id=telegram_user_id,
            ttl=ttl,
            rerequest=rerequest,
            reuse=False,
        )
        return ticket.state if ticket is not None else None

    async def issue_login(
        self,
        *,
        invitation_id: int,
        telegram_user_id: int,
        ttl: timedelta,
        rerequest: bool,
        reuse: bool,
        sealer: LoginSealer | None = None,
    ) -> LoginTicket | None:
        """The login state to show: with `reuse`, the live unused one again (its lifetime
        renewed; no new row, no event); otherwise a fresh one, and every older unused state of
        the invitation is superseded. None if the invitation is not at the login step."""
        now = utcnow()
        async with self.session() as s:
            if reuse and sealer is not None:
                again = await self._reuse_live_state(
                    s, invitation_id, telegram_user_id, rerequest, now + ttl, sealer
                )
                if again is not None:
                    return again
            result = await s.exec(
                sa.update(Invitation)  # type: ignore[call-overload]
                .where(
                    col(Invitation.id) == invitation_id,
                    col(Invitation.telegram_user_id) == telegram_user_id,
                    col(Invitation.step) == Step.LOGIN,
                    col(Invitation.status).in_(_OPEN_STATUSES),
                )
                .values(status=InviteStatus.LOGIN_STARTED, updated_at=now)
            )
            if result.rowcount != 1:
                await s.rollback()
                return None
            older = list(
                await s.exec(
                    select(LoginAttempt).where(
                        LoginAttempt.invitation_id == invitation_id,
                        col(LoginAttempt.used_at).is_(None),
                        col(LoginAttempt.superseded_at).is_(None),
                    )
                )
            )
            stale = tuple(
                (a.button_chat_id, a.button_message_id)
                for a in older
                if a.button_chat_id is not None and a.button_message_id is not None
            )
            if older:
                await s.exec(
                    sa.update(LoginAttempt)  # type: ignore[call-overload]
                    .where(
                        col(LoginAttempt.id).in_([a.id for a in older]),
                        col(LoginAttempt.used_at).is_(None),
                    )
                    .values(
                        superseded_at=now,
                        state_sealed=None,
                        confirm_hash=None,
                        pending_sealed=None,
                    )
                )
            state = new_secret()
            attempt = LoginAttempt(
                invitation_id=invitation_id,
                telegram_user_id=telegram_user_id,
                state_hash=secret_hash(state),
                rerequest=rerequest,
                created_at=now,
                expires_at=now + ttl,
                state_sealed=sealer.seal(state) if sealer is not None else None,
            )
            s.add(attempt)
            await _add_event_coalesced(
                s,
                invitation_id,
                "login_started",
                InviteStatus.LOGIN_STARTED,
                "rerequest" if rerequest else None,
            )
            await s.commit()
            assert attempt.id is not None
            return LoginTicket(attempt.id, state, reused=False, stale_buttons=stale)

    async def _reuse_live_state(
        self,
        s: AsyncSession,
        invitation_id: int,
        telegram_user_id: int,
        rerequest: bool,
        expires_at: datetime,
        sealer: LoginSealer,
    ) -> LoginTicket | None:
        now = utcnow()
        invite = await s.get(Invitation, invitation_id)
        if (
            invite is None
            or invite.telegram_user_id != telegram_user_id
            or invite.step != Step.LOGIN
            or invite.status != InviteStatus.LOGIN_STARTED
        ):
            return None
        live = (
            await s.exec(
                select(LoginAttempt)
                .where(
                    LoginAttempt.invitation_id == invitation_id,
                    LoginAttempt.telegram_user_id == telegram_user_id,
                    LoginAttempt.rerequest == rerequest,
                    col(LoginAttempt.used_at).is_(None),
                    col(LoginAttempt.superseded_at).is_(None),
                    col(LoginAttempt.confirm_hash).is_(None),
                    col(LoginAttempt.expires_at) > now,
                )
                .order_by(col(LoginAttempt.id).desc())
                .limit(1)
            )
        ).first()
        state = sealer.open(live.state_sealed) if live is not None else None
        if live is None or state is None:
            return None
        renewed = await s.exec(
            sa.update(LoginAttempt)  # type: ignore[call-overload]
            .where(
                col(LoginAttempt.id) == live.id,
                col(LoginAttempt.used_at).is_(None),
                col(LoginAttempt.superseded_at).is_(None),
            )
            .values(expires_at=expires_at)
        )
        if renewed.rowcount != 1:
            await s.rollback()
            return None
        await s.commit()
        assert live.id is not None
        return LoginTicket(live.id, state, reused=True)

    async def set_button_message(
        self, *, attempt_id: int, chat_id: int, message_id: int
    ) -> tuple[int, int] | None:
        """Remember the message now carrying the attempt's login button; returns the one that
        carried it before (its button is to be taken off), if any."""
        async with self.session() as s:
            attempt = await s.get(LoginAttempt, attempt_id, with_for_update=True)
            if attempt is None:
                return None
            before = (attempt.button_chat_id, attempt.button_message_id)
            attempt.button_chat_id, attempt.button_message_id = chat_id, message_id
            s.add(attempt)
            await s.commit()
        if before[0] is None or before[1] is None or before == (chat_id, message_id):
            return None
        return (before[0], before[1])

    async def peek_state(self, state: str) -> tuple[LoginAttempt, Invitation] | StateProblem:
        """The live login a state belongs to, without using it."""
        async with self.session() as s:
            attempt = (
                await s.exec(
                    select(LoginAttempt).where(LoginAttempt.state_hash == secret_hash(state))
                )
            ).first()
            if attempt is None:
                return StateProblem.UNKNOWN
            invite = await s.get(Invitation, attempt.invitation_id)
            problem = _state_problem(attempt, invite, utcnow())
            if problem is not None or invite is None:
                return problem or StateProblem.WITHDRAWN
            return attempt, invite

    async def bind_browser(self, *, attempt_id: int, browser_hash: str) -> bool:
        """The first browser to open the login link is the one it belongs to."""
        async with self.session() as s:
            result = await s.exec(
                sa.update(LoginAttempt)  # type: ignore[call-overload]
                .where(
                    col(LoginAttempt.id) == attempt_id,
                    col(LoginAttempt.browser_hash).is_(None),
                    *_live_attempt(utcnow()),
                )
                .values(browser_hash=browser_hash)
            )
            await s.commit()
            return bool(result.rowcount == 1)

    async def stage_confirmation(
        self, state: str, *, confirm_hash: str, pending_sealed: str
    ) -> tuple[LoginAttempt, Invitation] | StateProblem:
        """A redirect that reached another browser than the one that started the login waits
        here (the newest one wins) until it is confirmed on the page; nothing is used yet."""
        now = utcnow()
        state_hash = secret_hash(state)
        async with self.session() as s:
            result = await s.exec(
                sa.update(LoginAttempt)  # type: ignore[call-overload]
                .where(col(LoginAttempt.state_hash) == state_hash, *_live_attempt(now))
                .values(confirm_hash=confirm_hash, pending_sealed=pending_sealed)
            )
            await s.commit()
            attempt = (
                await s.exec(select(LoginAttempt).where(LoginAttempt.state_hash == state_hash))
            ).first()
            if attempt is None:
                return StateProblem.UNKNOWN
            invite = await s.get(Invitation, attempt.invitation_id)
            if result.rowcount != 1 or invite is None:
                return _state_problem(attempt, invite, now) or StateProblem.EXPIRED
            return attempt, invite

    async def take_confirmation(self, confirm_hash: str) -> PendingConfirmation | StateProblem:
        """Use a confirmed redirect's state exactly once (as `consume_state` does)."""
        now = utcnow()
        async with self.session() as s:
            attempt = (
                await s.exec(
                    select(LoginAttempt).where(LoginAttempt.confirm_hash == confirm_hash)
                )
            ).first()
            if attempt is None:
                return StateProblem.USED  # confirmed already (or never asked): one use only
            pending = attempt.pending_sealed
            result = await s.exec(
                sa.update(LoginAttempt)  # type: ignore[call-overload]
                .where(
                    col(LoginAttempt.id) == attempt.id,
                    col(LoginAttempt.confirm_hash) == confirm_hash,
                    *_live_attempt(now),
                )
                .values(used_at=now, confirm_hash=None, pending_sealed=None, state_sealed=None)
            )
            invite = await s.get(Invitation, attempt.invitation_id)
            if result.rowcount != 1 or invite is None:
                problem = _state_problem(attempt, invite, now) or StateProblem.USED
                await s.rollback()
                return problem
            await s.commit()
            attempt.used_at = now
            return PendingConfirmation(attempt, invite, pending)

    async def consume_state(self, state: str) -> tuple[LoginAttempt, Invitation] | StateProblem:
        """Use a state exactly once. The conditional UPDATE is the lock: of two concurrent
        callbacks with the same state, one gets rowcount 1, the other 0. A state is accepted
        only while it is the newest of its invitation and the invitation waits for a login."""
        now = utcnow()
        state_hash = secret_hash(state)
        async with self.session() as s:
            result = await s.exec(
                sa.update(LoginAttempt)  # type: ignore[call-overload]
                .where(col(LoginAttempt.state_hash) == state_hash, *_live_attempt(now))
                .values(used_at=now, state_sealed=None, confirm_hash=None, pending_sealed=None)
            )
            attempt = (
                await s.exec(select(LoginAttempt).where(LoginAttempt.state_hash == state_hash))
            ).first()
            if attempt is None:
                return StateProblem.UNKNOWN
            invite = await s.get(Invitation, attempt.invitation_id)
            if result.rowcount != 1 or invite is None:
                problem = _state_problem(attempt, invite, now) or StateProblem.EXPIRED
                await s.rollback()
                return problem
            await s.commit()
            return attempt, invite

    async def interrupt_login(
        self, *, attempt_id: int, invitation_id: int, outgoing: Sequence[Outgoing] = ()
    ) -> bool:
        """A login whose result could not be stored (the database failed during the callback):
        the attempt is recorded as interrupted and the influencer gets a retry, once. True when
        this call recorded it (False: it was recorded already, or the result was stored)."""
        now = utcnow()
        async with self.session() as s:
            result = await s.exec(
                sa.update(LoginAttempt)  # type: ignore[call-overload]
                .where(
                    col(LoginAttempt.id) == attempt_id,
                    col(LoginAttempt.used_at).is_not(None),
                    col(LoginAttempt.outcome).is_(None),
                )
                .values(outcome=INTERRUPTED)
            )
            if result.rowcount != 1:
                await s.rollback()
                return False
            invite = await s.get(Invitation, invitation_id)
            if invite is not None and invite.status not in (
                InviteStatus.CONNECTED,
                InviteStatus.REVOKED,
            ):
                s.add(_event(invitation_id, "login_interrupted", InviteStatus(invite.status), None))
                enqueue_in(s, outgoing, now)
            await s.commit()
            return True

    async def stranded_logins(
        self, *, used_before: datetime, used_after: datetime
    ) -> list[LoginAttempt]:
        """Attempts used before `used_before` that never got a result (the process died or the
        database failed during their callback)."""
        async with self.session() as s:
            return list(
                await s.exec(
                    select(LoginAttempt)
                    .where(
                        col(LoginAttempt.used_at).is_not(None),
                        col(LoginAttempt.used_at) < used_before,
                        col(LoginAttempt.used_at) > used_after,
                        col(LoginAttempt.outcome).is_(None),
                    )
                    .order_by(col(LoginAttempt.id))
                    .limit(100)
                )
            )

    async def prune_login_attempts(self, *, expired_before: datetime) -> int:
        """Login attempts that were never used (replaced or expired) are of no use once expired;
        the used ones stay (each is a real login, with its result)."""
        async with self.session() as s:
            result = await s.exec(
                sa.delete(LoginAttempt).where(  # type: ignore[call-overload]
                    col(LoginAttempt.used_at).is_(None),
                    col(LoginAttempt.expires_at) < expired_before,
                )
            )
            # Sealed secrets of expired states are erased at once, whatever is kept.
            await s.exec(
                sa.update(LoginAttempt)  # type: ignore[call-overload]
                .where(
                    col(LoginAttempt.expires_at) < utcnow(),
                    sa.or_(
                        col(LoginAttempt.state_sealed).is_not(None),
                        col(LoginAttempt.pending_sealed).is_not(None),
                    ),
                )
                .values(state_sealed=None, pending_sealed=None, confirm_hash=None)
            )
            await s.commit()
            return int(result.rowcount or 0)

    async def other_active_connections(self, facebook_user_id: str) -> int:
        """How many active connections this Facebook user has (a revocation at Facebook ends
        them all)."""
        async with self.session() as s:
            count = (
                await s.exec(
                    select(sa.func.count())
                    .select_from(Connection)
                    .where(
                        Connection.facebook_user_id == facebook_user_id,
                        Connection.status == "active",
                    )
                )
            ).one()
            return int(count or 0)
    async def record_verdict(
        self,
        *,
        attempt_id: int,
        invitation_id: int,
        outcome: str,
        connection: ConnectionRecord | None,
        outgoing: Sequence[Outgoing] = (),
        facts: VerdictFacts | None = None,
        repeat_window: timedelta = timedelta(0),
    ) -> Invitation:
        """Store an attempt's result, and the messages telling people about it, in one
        transaction; with a connection, the invitation becomes connected.

        A failure within `repeat_window` of an earlier failure whose notices went out sends no
        new notices (`OutboxKind.NOTICE` rows): one still waiting to be delivered gets the new
        text instead, and the live card (an edit) shows the count and the latest reason."""
        now = utcnow()
        async with self.session() as s:
            invite = await s.get(Invitation, invitation_id, with_for_update=True)
            attempt = await s.get(LoginAttempt, attempt_id)
            assert invite is not None and attempt is not None
            if invite.status == InviteStatus.REVOKED:
                # Withdrawn (or forgotten) while this login was under way: keep nothing of it.
                attempt.outcome = "withdrawn"
                s.add(attempt)
                await s.commit()
                return invite
            if invite.status == InviteStatus.CONNECTED:
                # Connected by another login meanwhile: a late result changes nothing and tells
                # nobody (the caller says so on the page).
                attempt.outcome = outcome
                s.add(attempt)
                await s.commit()
                return invite
            attempt.outcome = outcome
            s.add(attempt)
            if connection is not None:
                existing = (
                    await s.exec(
                        select(Connection).where(Connection.invitation_id == invitation_id)
                    )
                ).first()
                row = existing or Connection(
                    invitation_id=invitation_id, **_conn_fields(connection)
                )
                if existing is not None:
                    for key, value in _conn_fields(connection).items():
                        setattr(existing, key, value)
                    existing.created_at = now
                s.add(row)
                invite.status = InviteStatus.CONNECTED
                invite.step = Step.DONE
                invite.last_reason = None
            else:
                invite.status = InviteStatus.FAILED
                invite.step = Step.LOGIN
                invite.last_reason = outcome
            invite.updated_at = now
            s.add(invite)
            notices = [o for o in outgoing if o.kind == OutboxKind.NOTICE]
            if notices and connection is None and repeat_window:
                announced_at = await _announced_failure_since(s, invitation_id, now - repeat_window)
                if announced_at is not None:
                    await _renew_pending_notices(s, invitation_id, notices, announced_at)
                    outgoing = [o for o in outgoing if o.kind != OutboxKind.NOTICE]
                    notices = []
            event = _event(invitation_id, "verdict", InviteStatus(invite.status), outcome)
            if facts is not None:
                event.facts = replace(facts, announced=bool(notices)).to_json()
            s.add(event)
            enqueue_in(s, outgoing, now)
            await s.commit()
            return invite

    async def failed_logins(self, invitation_id: int) -> int:
        """Logins of this invitation that came back from Facebook without connecting (the one
        being judged right now included)."""
        async with self.session() as s:
            return int(
                (
                    await s.exec(
                        select(sa.func.count())
                        .select_from(LoginAttempt)
                        .where(
                            LoginAttempt.invitation_id == invitation_id,
                            col(LoginAttempt.used_at).is_not(None),
                            sa.or_(
                                col(LoginAttempt.outcome).is_(None),
                                col(LoginAttempt.outcome).not_in(("connected", "withdrawn")),
                            ),
                        )
                    )
                ).one()
            )

    async def connection_of(self, invitation_id: int) -> Connection | None:
        async with self.session() as s:
            return (
                await s.exec(select(Connection).where(Connection.invitation_id == invitation_id))
            ).first()

    async def last_attempt(self, invitation_id: int) -> LoginAttempt | None:
        async with self.session() as s:
            return (
                await s.exec(
                    select(LoginAttempt)
                    .where(LoginAttempt.invitation_id == invitation_id)
                    .order_by(col(LoginAttempt.id).desc())
                    .limit(1)
                )
            ).first()

    # --- outbox ------------------------------------------------------------------------------

    async def enqueue(self, outgoing: Sequence[Outgoing]) -> None:
        async with self.session() as s:
            enqueue_in(s, outgoing, utcnow())
            await s.commit()

    async def due_messages(self, *, limit: int) -> list[OutboxMessage]:
        """Pending rows that are due, plus every other pending notice to a chat that has a due
        notice (those can ride along in the same combined message)."""
        async with self.session() as s:
            due = list(
                await s.exec(
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.status == OutboxStatus.PENDING,
                        col(OutboxMessage.due_at) <= utcnow(),
                    )
                    .order_by(col(OutboxMessage.id))
                    .limit(limit)
                )
            )
            chats = {r.chat_id for r in due if r.kind == OutboxKind.NOTICE}
            if not chats:
                return due
            seen = {r.id for r in due}
            riders = await s.exec(
                select(OutboxMessage)
                .where(
                    OutboxMessage.status == OutboxStatus.PENDING,
                    OutboxMessage.kind == OutboxKind.NOTICE,
                    col(OutboxMessage.chat_id).in_(chats),
                )
                .order_by(col(OutboxMessage.id))
                .limit(limit)
            )
            extra = [r for r in riders if r.id not in seen]
            return sorted(due + extra, key=lambda r: r.id or 0)

    async def next_due_at(self) -> datetime | None:
        async with self.session() as s:
            return (
                await s.exec(
                    select(sa.func.min(OutboxMessage.due_at)).where(
                        OutboxMessage.status == OutboxStatus.PENDING
                    )
                )
            ).one()

    async def settle(
        self,
        ids: Sequence[int],
        *,
        status: OutboxStatus,
        message_id: int | None = None,
        error: str | None = None,
    ) -> None:
        """Final state of outbox rows (sent, superseded, unreachable, failed)."""
        if not ids:
            return
        now = utcnow()
        async with self.session() as s:
            await s.exec(
                sa.update(OutboxMessage)  # type: ignore[call-overload]
                .where(col(OutboxMessage.id).in_(ids))
                .values(
                    status=status,
                    message_id=message_id,
                    sent_at=now if status == OutboxStatus.SENT else None,
                    last_error=error[:200] if error else None,
                )
            )
            await s.commit()

    async def retry_later(self, ids: Sequence[int], *, due_at: datetime, error: str) -> None:
        async with self.session() as s:
            await s.exec(
                sa.update(OutboxMessage)  # type: ignore[call-overload]
                .where(col(OutboxMessage.id).in_(ids))
                .values(
                    due_at=due_at,
                    attempts=OutboxMessage.attempts + 1,
                    last_error=error[:200],
                )
            )
            await s.commit()

    async def prune_outbox(self, *, before: datetime) -> int:
        """Delivered messages quote names and numbers: keep them only as long as useful."""
        async with self.session() as s:
            result = await s.exec(
                sa.delete(OutboxMessage).where(  # type: ignore[call-overload]
                    col(OutboxMessage.status) != OutboxStatus.PENDING,
                    col(OutboxMessage.created_at) < before,
                )
            )
            await s.commit()
            return int(result.rowcount or 0)

    async def outbox(self) -> list[OutboxMessage]:
        async with self.session() as s:
            return list(await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))

    # --- webhook deliveries ------------------------------------------------------------------

    async def claim_update(self, update_id: int) -> bool:
        """True the first time an update id is seen (by any replica), False for a redelivery."""
        async with self.session() as s:
            s.add(TelegramUpdate(update_id=update_id, received_at=utcnow()))
            try:
                await s.commit()
            except sa.exc.IntegrityError:
                return False
            return True

    async def forget_updates_before(self, cutoff: datetime) -> int:
        """Telegram redelivers for at most a day; older ids need not be kept."""
        async with self.session() as s:
            result = await s.exec(
                sa.delete(TelegramUpdate).where(col(TelegramUpdate.received_at) < cutoff)  # type: ignore[call-overload]
            )
            await s.commit()
            return int(result.rowcount or 0)


class LeaderLease:
    """One process at a time delivers the outbox and runs periodic jobs.

    On PostgreSQL: a session-level advisory lock held on a dedicated connection. If the process
    dies, its connection closes, the lock is released, and another replica's `acquire` succeeds.
    SQLite serves one process, which is always the leader.
    """

    KEY = 0x436F_6E6E_6563  # "Connec"

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: AsyncConnection | None = None
        self._sqlite = db.url.startswith("sqlite")
        self.held = False

    async def acquire(self) -> bool:
        """Become (or stay) the leader; cheap to call before every round."""
        if self._sqlite:
            self.held = True
            return True
        if self._conn is not None:
            try:
                await self._conn.execute(sa.text("SELECT 1"))
                await self._conn.commit()
                return True
            except Exception:
                await self.release()  # the connection died, and the lock with it
        conn = await self._db.engine.connect()
        try:
            got = (
                await conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.KEY})
            ).scalar()
            await conn.commit()
        except BaseException:
            await conn.close()  # back to the pool (or discarded), not left checked out
            raise
        if got:
            self._conn, self.held = conn, True
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        self.held = False
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.KEY})
            await conn.commit()
        except Exception:
            pass  # closing the connection releases it anyway
        finally:
            await conn.close()


_OPEN_STATUSES = (InviteStatus.OPENED, InviteStatus.LOGIN_STARTED, InviteStatus.FAILED)
# An invitation waits for a login while its login button is out (or a retry is offered).
_WAITING_FOR_LOGIN = (InviteStatus.LOGIN_STARTED, InviteStatus.FAILED)
# The outcome of an attempt whose result could not be stored.
INTERRUPTED = "interrupted"


def _live_attempt(now: datetime) -> tuple[Any, ...]:
    """Conditions of a state that may still be used: unused, the newest of its invitation,
    not expired, and its invitation waiting for a login."""
    waiting = sa.select(Invitation.id).where(  # type: ignore[call-overload]
        col(Invitation.status).in_(_WAITING_FOR_LOGIN), col(Invitation.step) == Step.LOGIN
    )
    return (
        col(LoginAttempt.used_at).is_(None),
        col(LoginAttempt.superseded_at).is_(None),
        col(LoginAttempt.expires_at) > now,
        col(LoginAttempt.invitation_id).in_(waiting),
    )


def _state_problem(
    attempt: LoginAttempt, invite: Invitation | None, now: datetime
) -> StateProblem | None:
    """Why a state cannot be used (None: it can)."""
    if attempt.used_at is not None:
        return StateProblem.USED
    if invite is None or invite.status == InviteStatus.REVOKED:
        return StateProblem.WITHDRAWN
    if invite.status == InviteStatus.CONNECTED:
        return StateProblem.CONNECTED
    if attempt.superseded_at is not None:
        return StateProblem.SUPERSEDED
    if attempt.expires_at <= now:
        return StateProblem.EXPIRED
    if invite.status not in _WAITING_FOR_LOGIN or invite.step != Step.LOGIN:
        return StateProblem.SUPERSEDED  # the flow moved on without this button
    return None


async def _add_event_coalesced(
    s: AsyncSession, invitation_id: int, kind: str, status: InviteStatus, detail: str | None
) -> None:
    """An event, unless the invitation's newest event is the same one: then only its time moves
    (a hundred new login buttons in a row are one "login started" in the timeline)."""
    last = (
        await s.exec(
            select(InvitationEvent)
            .where(InvitationEvent.invitation_id == invitation_id)
            .order_by(col(InvitationEvent.id).desc())
            .limit(1)
        )
    ).first()
    if last is not None and (last.kind, last.status, last.detail) == (kind, status, detail):
        last.at = utcnow()
        s.add(last)
        return
    s.add(_event(invitation_id, kind, status, detail))


def _event(
    invitation_id: int, kind: str, status: InviteStatus, detail: str | None
) -> InvitationEvent:
    return InvitationEvent(
        invitation_id=invitation_id, kind=kind, status=status, detail=detail, at=utcnow()
    )


async def _announced_failure_since(
    s: AsyncSession, invitation_id: int, since: datetime
) -> datetime | None:
    """When the managers were last told about a failed login of this invitation, if since."""
    rows = await s.exec(
        select(InvitationEvent)
        .where(
            InvitationEvent.invitation_id == invitation_id,
            InvitationEvent.kind == "verdict",
            col(InvitationEvent.at) >= since,
            col(InvitationEvent.facts).is_not(None),
        )
        .order_by(col(InvitationEvent.id).desc())
    )
    for event in rows:
        if event.detail != "connected" and was_announced(event.facts):
            return event.at
    return None


async def _renew_pending_notices(
    s: AsyncSession, invitation_id: int, notices: Sequence[Outgoing], since: datetime
) -> None:
    """A notice about this invitation still waiting for its chat takes the newer text."""
    for notice in notices:
        pending = (
            await s.exec(
                select(OutboxMessage)
                .where(
                    OutboxMessage.invitation_id == invitation_id,
                    OutboxMessage.chat_id == notice.chat_id,
                    OutboxMessage.kind == OutboxKind.NOTICE,
                    OutboxMessage.status == OutboxStatus.PENDING,
                    col(OutboxMessage.created_at) >= since,
                )
                .order_by(col(OutboxMessage.id).desc())
                .limit(1)
            )
        ).first()
        if pending is not None:
            pending.text = notice.text
            s.add(pending)


def enqueue_in(s: AsyncSession, outgoing: Sequence[Outgoing], now: datetime) -> None:
    """Add outbox rows to a transaction that is about to commit an event."""
    for o in outgoing:
        s.add(
            OutboxMessage(
                chat_id=o.chat_id,
                kind=o.kind,
                text=o.text,
                keyboard=o.keyboard,
                edit_message_id=o.edit_message_id,
                invitation_id=o.invitation_id,
                due_at=now + o.delay,
                created_at=now,
                audience=o.audience,
                brand_id=o.brand_id,
                manager_id=o.manager_id,
            )
        )


def _conn_fields(c: ConnectionRecord) -> dict[str, Any]:
    return {
        "facebook_user_id": c.facebook_user_id,
        "page_id": c.page_id,
        "page_name": c.page_name[:256],
        "instagram_id": c.instagram_id,
        "instagram_username": c.instagram_username,
        "followers_count": c.followers_count,
        "permissions": ",".join(c.permissions)[:1024],
        "token_encrypted": c.token_encrypted,
        "token_expires_at": c.token_expires_at,
        "data_access_expires_at": c.data_access_expires_at,
        # A renewed connection is active again, whatever ended the one it replaces.
        "status": "active",
        "ended_at": None,
    }
