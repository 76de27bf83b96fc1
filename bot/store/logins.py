"""Login attempts (OAuth states), their confirmation, and the verdict with its connection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.crypto import new_secret, secret_hash
from bot.facts import VerdictFacts, was_announced
from bot.login_secrets import LoginSealer
from bot.models import (
    Connection,
    ConnectionStatus,
    Invitation,
    InvitationEvent,
    InviteStatus,
    LoginAttempt,
    LoginPath,
    OutboxKind,
    OutboxMessage,
    OutboxStatus,
    Step,
    access_ends,
    utcnow,
)
from bot.store.base import Repository
from bot.store.events import EventKind, add_event_coalesced, new_event, newest_event
from bot.store.invitations import OPEN_STATUSES
from bot.store.outbox import Outgoing, enqueue_in


class StateProblem(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    WITHDRAWN = "withdrawn"  # the invitation was withdrawn (or forgotten) meanwhile
    SUPERSEDED = "superseded"  # a newer login button was issued for the invitation
    CONNECTED = "connected"  # the invitation is connected already: nothing to log in for
    # A state handed out for one Meta app's window came back to the other app's callback
    # (a Facebook state at /oauth/instagram, or the other way round): refused, nothing used.
    WRONG_PATH = "wrong_path"


class RenewalRefused(StrEnum):
    """Why no renewal login is handed out (`Logins.issue_renewal`)."""

    NOT_YOURS = "not_yours"  # no such invitation, or another person's
    ENDED = "ended"  # withdrawn, forgotten, or its connection deleted
    NOT_CONNECTED = "not_connected"  # still on its way to the first connection
    JUST_ISSUED = "just_issued"  # a double tap: the login of the first tap is on its way
    NOT_DUE = "not_due"  # healthy, and access runs long enough (e.g. an old button)


# A second Renew within this long is a double tap: the first tap's login button is answer enough.
RENEW_DOUBLE_TAP = timedelta(seconds=5)


def needs_repair(connection: Connection) -> bool:
    """Broken, or removed at Facebook (the app removed): a renewal login reconnects it."""
    return connection.health in _TOLD_HEALTH or connection.status == ConnectionStatus.DISCONNECTED


class RenewalStored(StrEnum):
    """What became of a renewal login's result (`Logins.record_renewal`)."""

    RENEWED = "renewed"  # the kept connection has fresh tokens
    FAILED = "failed"  # the login did not renew it; the connection is as it was
    ENDED = "ended"  # the connection ended (or changed) meanwhile: nothing kept


@dataclass(frozen=True)
class LoginTicket:
    """A login state handed out (fresh, or the live one shown again)."""

    attempt_id: int
    state: str
    reused: bool
    # (chat id, message id) of the messages whose login buttons the new state replaced.
    stale_buttons: tuple[tuple[int, int], ...] = ()
    # A renewal login for a broken connection (worded as a reconnect).
    reconnect: bool = False
    # The message carrying this (reused) state's button so far, if any.
    shown_in: tuple[int, int] | None = None
    # The window the state was handed out for (a LoginPath).
    path: str = LoginPath.FACEBOOK


@dataclass(frozen=True)
class PendingConfirmation:
    """A redirect waiting for its confirmation, taken (once) by the confirmation."""

    attempt: LoginAttempt
    invitation: Invitation
    pending_sealed: str | None


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
    # The connected Page's access token, sealed like the user token (None: nothing kept).
    page_token_encrypted: str | None = field(default=None, repr=False)
    # When its first health check is due (`bot.upkeep`); None: at once.
    next_check_at: datetime | None = None
    # A LoginPath: Instagram Login connections have no Facebook user and no Page (empty fields)
    # and keep Instagram's long-lived user token.
    path: str = LoginPath.FACEBOOK


class Logins(Repository):
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
        return ticket.state if isinstance(ticket, LoginTicket) else None

    async def issue_login(
        self,
        *,
        invitation_id: int,
        telegram_user_id: int,
        ttl: timedelta,
        rerequest: bool,
        reuse: bool,
        sealer: LoginSealer | None = None,
        tapped: tuple[int, int] | None = None,
    ) -> LoginTicket | Literal[RenewalRefused.JUST_ISSUED] | None:
        """The login state to show: with `reuse`, the live unused one again (its lifetime
        renewed; no new row, no event); otherwise a fresh one, and every older unused state of
        the invitation is superseded. None if the invitation is not at the login step.

        `tapped` is the (chat, message) whose "New login link" or "Try again" was tapped: a
        state issued within `RENEW_DOUBLE_TAP` whose button is in another message (the first
        of fast taps sent it) is answer enough: JUST_ISSUED, and nothing changes.

        Once a login of the invitation came back with a permission declined, every later one
        re-requests (`rerequest`), whatever came in between (a Cancel, a wrong Page): Facebook
        does not ask again for a declined permission otherwise. The timeline's event says
        "rerequest" only when this login is handed out because of a declined permission (the
        caller's `rerequest`); any other later login is "again" (a new login link)."""
        now = utcnow()
        async with self.session() as s:
            asked_again = rerequest
            rerequest = rerequest or await _declined_before(s, invitation_id)
            if reuse and sealer is not None:
                again = await self._reuse_live_state(
                    s, invitation_id, telegram_user_id, rerequest, now + ttl, sealer
                )
                if again is not None:
                    return again
            result = await s.exec(
                sa.update(Invitation)
                .where(
                    col(Invitation.id) == invitation_id,
                    col(Invitation.telegram_user_id) == telegram_user_id,
                    col(Invitation.step) == Step.LOGIN,
                    col(Invitation.status).in_(OPEN_STATUSES),
                )
                .values(status=InviteStatus.LOGIN_STARTED, updated_at=now)
                # The way in the influencer is on decides which Meta app's window it is for.
                .returning(col(Invitation.path))
            )
            updated = result.first()
            if updated is None:
                await s.rollback()
                return None
            path = _login_path(updated[0])
            older = list(
                await s.exec(
                    select(LoginAttempt).where(
                        LoginAttempt.invitation_id == invitation_id,
                        col(LoginAttempt.used_at).is_(None),
                        col(LoginAttempt.superseded_at).is_(None),
                    )
                )
            )
            if tapped is not None and any(
                a.created_at > now - RENEW_DOUBLE_TAP
                and (a.button_chat_id, a.button_message_id) != tapped
                for a in older
            ):
                # The second and third of fast taps: the first tap's login button is on its way.
                await s.rollback()
                return RenewalRefused.JUST_ISSUED
            # Every earlier login message still carrying its buttons loses them: the replaced
            # ones, and those of logins already used (a "Try again" after a failed login).
            stale = tuple(await _forget_login_buttons(s, invitation_id))
            if older:
                await s.exec(
                    sa.update(LoginAttempt)
                    .where(
                        col(LoginAttempt.id).in_([a.id for a in older]),
                        col(LoginAttempt.used_at).is_(None),
                    )
                    .values(**_superseded(now))
                )
            login_detail = await _login_event_detail(s, invitation_id, asked_again=asked_again)
            if path == LoginPath.INSTAGRAM and login_detail in (None, "again"):
                # The timeline names the window: "instagram" (the first Instagram login of the
                # invitation would be None), "instagram_again".
                login_detail = "instagram_again" if login_detail else "instagram"
            attempt, state = _new_attempt(
                invitation_id,
                telegram_user_id,
                now=now,
                ttl=ttl,
                sealer=sealer,
                rerequest=rerequest,
                path=path,
            )
            s.add(attempt)
            await add_event_coalesced(
                s,
                invitation_id,
                EventKind.LOGIN_STARTED,
                InviteStatus.LOGIN_STARTED,
                login_detail,
            )
            await s.commit()
            assert attempt.id is not None
            return LoginTicket(attempt.id, state, reused=False, stale_buttons=stale)

    async def issue_renewal(
        self,
        *,
        invitation_id: int,
        telegram_user_id: int,
        ttl: timedelta,
        sealer: LoginSealer | None = None,
        due_within: timedelta | None = None,
    ) -> LoginTicket | RenewalRefused:
        """A fresh login state renewing the invitation's kept connection (the Renew button):
        only for the influencer the invitation is bound to, while it is connected and its
        connection was not withdrawn or deleted (one removed at Facebook may be reconnected).
        It replaces every older unused state of the invitation, as a new login link does. The
        invitation stays connected meanwhile; the attempt is marked a renewal.

        It re-requests when Facebook holds a permission as declined: the kept connection lost
        one, or the last login came back without one (Facebook never asks again otherwise).

        Refused as a double tap when a renewal login was handed out RENEW_DOUBLE_TAP ago or
        less; with `due_within`, refused for a healthy connection whose access runs longer than
        that (nothing to renew: an old button)."""
        now = utcnow()
        async with self.session() as s:
            # Locked: two taps at once issue one after the other, the newer replacing the older.
            invite = await s.get(Invitation, invitation_id, with_for_update=True)
            if invite is None or invite.telegram_user_id != telegram_user_id:
                await s.rollback()
                return RenewalRefused.NOT_YOURS
            kept = (
                await s.exec(select(Connection).where(Connection.invitation_id == invitation_id))
            ).first()
            if invite.status == InviteStatus.REVOKED or (
                invite.status == InviteStatus.CONNECTED
                and (kept is None or kept.status == ConnectionStatus.REVOKED)
            ):
                await s.rollback()
                return RenewalRefused.ENDED
            if invite.status != InviteStatus.CONNECTED or kept is None:
                await s.rollback()
                return RenewalRefused.NOT_CONNECTED
            instagram = kept.path == LoginPath.INSTAGRAM
            ends = access_ends(kept)
            if instagram and not needs_repair(kept) and (ends is None or ends > now):
                # Instagram Login tokens are refreshed by the health job: nothing for the
                # influencer to renew while it works. A broken one (or one whose token ran out)
                # is reconnected with a fresh Instagram login.
                await s.rollback()
                return RenewalRefused.NOT_DUE
            if (
                due_within is not None
                and not needs_repair(kept)
                and kept.health == _HEALTHY
                and (ends is None or ends > now + due_within)
            ):
                await s.rollback()
                return RenewalRefused.NOT_DUE
            just_issued = (
                await s.exec(
                    select(LoginAttempt.id).where(
                        LoginAttempt.invitation_id == invitation_id,
                        col(LoginAttempt.renewal) == sa.true(),
                        col(LoginAttempt.used_at).is_(None),
                        col(LoginAttempt.superseded_at).is_(None),
                        col(LoginAttempt.created_at) > now - RENEW_DOUBLE_TAP,
                    )
                )
            ).first()
            if just_issued is not None:
                await s.rollback()
                return RenewalRefused.JUST_ISSUED
            last = (
                await s.exec(
                    select(LoginAttempt.outcome)
                    .where(
                        LoginAttempt.invitation_id == invitation_id,
                        col(LoginAttempt.used_at).is_not(None),
                    )
                    .order_by(col(LoginAttempt.id).desc())
                    .limit(1)
                )
            ).first()
            # Instagram's window always shows every permission again: no re-request there.
            rerequest = not instagram and PERMISSIONS_DECLINED in (kept.health_reason, last)
            await s.exec(
                sa.update(LoginAttempt)
                .where(
                    col(LoginAttempt.invitation_id) == invitation_id,
                    col(LoginAttempt.used_at).is_(None),
                    col(LoginAttempt.superseded_at).is_(None),
                )
                .values(**_superseded(now))
            )
            stale = tuple(await _forget_login_buttons(s, invitation_id))
            attempt, state = _new_attempt(
                invitation_id,
                telegram_user_id,
                now=now,
                ttl=ttl,
                sealer=sealer,
                rerequest=rerequest,
                renewal=True,
                path=kept.path if instagram else LoginPath.FACEBOOK,
            )
            s.add(attempt)
            await s.commit()
            assert attempt.id is not None
            return LoginTicket(
                attempt.id,
                state,
                reused=False,
                stale_buttons=stale,
                # An Instagram Login connection is renewed only to mend it.
                reconnect=instagram or needs_repair(kept),
                path=kept.path if instagram else LoginPath.FACEBOOK,
            )

    async def kept_connection(self, invitation_id: int) -> Connection | None:
        """The invitation's connection (as a renewal compares with it)."""
        async with self.session() as s:
            return (
                await s.exec(select(Connection).where(Connection.invitation_id == invitation_id))
            ).first()

    async def last_outcome(self, invitation_id: int) -> str | None:
        """The outcome of the invitation's newest login that came back (None: none did)."""
        async with self.session() as s:
            return (
                await s.exec(
                    select(LoginAttempt.outcome)
                    .where(
                        LoginAttempt.invitation_id == invitation_id,
                        col(LoginAttempt.used_at).is_not(None),
                    )
                    .order_by(col(LoginAttempt.id).desc())
                    .limit(1)
                )
            ).first()

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
                    # A state of the other way in is not shown again (the path changed).
                    LoginAttempt.path == _login_path(invite.path),
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
            sa.update(LoginAttempt)
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
        chat, message = live.button_chat_id, live.button_message_id
        shown = (chat, message) if chat is not None and message is not None else None
        return LoginTicket(live.id, state, reused=True, shown_in=shown)

    async def state_owner(self, state: str) -> int | None:
        """The Telegram user a login state was handed to, whatever became of it since (for the
        language of the page refusing it); None for a state that is not ours."""
        async with self.session() as s:
            owner = (
                await s.exec(
                    select(LoginAttempt.telegram_user_id).where(
                        LoginAttempt.state_hash == secret_hash(state)
                    )
                )
            ).first()
            return int(owner) if owner is not None else None

    async def peek_state(self, state: str) -> tuple[LoginAttempt, Invitation] | StateProblem:
        """The live login a state belongs to, without using it (one read)."""
        async with self.session() as s:
            found = await _attempt_and_invitation(s, secret_hash(state))
        if found is None:
            return StateProblem.UNKNOWN
        attempt, invite = found
        problem = _state_problem(attempt, invite, utcnow())
        if problem is not None or invite is None:
            return problem or StateProblem.WITHDRAWN
        return attempt, invite

    async def bind_browser(self, *, attempt_id: int, browser_hash: str) -> bool:
        """The first browser to open the login link is the one it belongs to."""
        async with self.session() as s:
            result = await s.exec(
                sa.update(LoginAttempt)
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
        self,
        state: str,
        *,
        confirm_hash: str,
        pending_sealed: str,
        path: str = LoginPath.FACEBOOK,
    ) -> tuple[LoginAttempt, Invitation] | StateProblem:
        """A redirect that reached another browser than the one that started the login waits
        here (the newest one wins) until it is confirmed on the page; nothing is used yet.
        `path`: the callback it came back to (a state of the other way in is refused)."""
        now = utcnow()
        state_hash = secret_hash(state)
        async with self.session() as s:
            result = await s.exec(
                sa.update(LoginAttempt)
                .where(
                    col(LoginAttempt.state_hash) == state_hash,
                    col(LoginAttempt.path) == path,
                    *_live_attempt(now),
                )
                .values(confirm_hash=confirm_hash, pending_sealed=pending_sealed)
            )
            await s.commit()
            attempt = (
                await s.exec(select(LoginAttempt).where(LoginAttempt.state_hash == state_hash))
            ).first()
            if attempt is None:
                return StateProblem.UNKNOWN
            if attempt.path != path:
                return StateProblem.WRONG_PATH
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
                sa.update(LoginAttempt)
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
        """Use a state exactly once (whichever browser brings it; see `use_state`)."""
        used = await self.use_state(state, browser_hash=None)
        return used if used is not None else StateProblem.EXPIRED

    async def use_state(
        self, state: str, *, browser_hash: str | None, path: str = LoginPath.FACEBOOK
    ) -> tuple[LoginAttempt, Invitation] | StateProblem | None:
        """Use a state exactly once, in the browser that opened its login link first
        (`browser_hash`; None: any). One statement: the conditional UPDATE is the lock (of two
        concurrent callbacks with the same state, one gets the row, the other none) and returns
        the attempt with its invitation. A state is accepted only while it is the newest of its
        invitation and the invitation waits for a login. When nothing was used, one read says
        why: the problem, or None for a live state that another browser brought (to confirm).
        `path`: the callback the state came back to; a state of the other way in is refused
        (`StateProblem.WRONG_PATH`) and stays as it was."""
        now = utcnow()
        state_hash = secret_hash(state)
        conditions = [
            col(LoginAttempt.state_hash) == state_hash,
            col(LoginAttempt.path) == path,
            *_live_attempt(now),
        ]
        if browser_hash is not None:
            conditions.append(col(LoginAttempt.browser_hash) == browser_hash)
        async with self.session() as s:
            used = (
                await s.exec(
                    sa.update(LoginAttempt)
                    .where(*conditions)
                    .values(
                        used_at=now, state_sealed=None, confirm_hash=None, pending_sealed=None
                    )
                    .returning(LoginAttempt, *_its_invitation())
                    .execution_options(synchronize_session=False)
                )
            ).first()
            if used is not None:
                await s.commit()
                attempt, *columns = tuple(used)
                return attempt, _invitation_of(columns)
            found = await _attempt_and_invitation(s, state_hash)
        if found is None:
            return StateProblem.UNKNOWN
        if found[0].path != path:
            return StateProblem.WRONG_PATH
        return _state_problem(*found, now)

    async def interrupt_login(
        self,
        *,
        attempt_id: int,
        invitation_id: int,
        outgoing: Sequence[Outgoing] = (),
        renewal: bool = False,
    ) -> bool:
        """A login whose result could not be stored (the database failed during the callback):
        the attempt is recorded as interrupted and the influencer gets a retry, once. True when
        this call recorded it (False: it was recorded already, or the result was stored). A
        renewal's retry goes to a connected invitation (without an event: nothing changed)."""
        now = utcnow()
        async with self.session() as s:
            result = await s.exec(
                sa.update(LoginAttempt)
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
                s.add(
                    new_event(
                        invitation_id, EventKind.LOGIN_INTERRUPTED, InviteStatus(invite.status)
                    )
                )
                enqueue_in(s, outgoing, now)
            elif renewal and invite is not None and invite.status == InviteStatus.CONNECTED:
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
                sa.delete(LoginAttempt).where(
                    col(LoginAttempt.used_at).is_(None),
                    col(LoginAttempt.expires_at) < expired_before,
                )
            )
            # Sealed secrets of expired states are erased at once, whatever is kept.
            await s.exec(
                sa.update(LoginAttempt)
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
                        Connection.status == ConnectionStatus.ACTIVE,
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
            assert invite is not None
            if invite.status == InviteStatus.REVOKED:
                # Withdrawn (or forgotten) while this login was under way: keep nothing of it.
                await _set_outcome(s, attempt_id, "withdrawn")
                await s.commit()
                return invite
            if invite.status == InviteStatus.CONNECTED:
                # Connected by another login meanwhile: a late result changes nothing and tells
                # nobody (the caller says so on the page).
                await _set_outcome(s, attempt_id, outcome)
                await s.commit()
                return invite
            # Every change of the invitation before the first statement: one UPDATE of it.
            if connection is not None:
                invite.status = InviteStatus.CONNECTED
                invite.step = Step.DONE
                invite.last_reason = None
            else:
                invite.status = InviteStatus.FAILED
                invite.step = Step.LOGIN
                invite.last_reason = outcome
            invite.updated_at = now
            s.add(invite)
            await _set_outcome(s, attempt_id, outcome)
            if connection is not None:
                await _keep_connection(s, invitation_id, connection, now)
            # The login was used, whatever came of it: its button (and any older one) is of no use
            # any more; a failure offers its own "Try again".
            outgoing = [*outgoing, *await _take_login_buttons_off(s, invitation_id)]
            notices = [o for o in outgoing if o.kind == OutboxKind.NOTICE]
            if notices and connection is None and repeat_window:
                announced_at = await _announced_failure_since(s, invitation_id, now - repeat_window)
                if announced_at is not None:
                    await _renew_pending_notices(s, invitation_id, notices, announced_at)
                    outgoing = [o for o in outgoing if o.kind != OutboxKind.NOTICE]
                    notices = []
            status = InviteStatus(invite.status)
            event = new_event(invitation_id, EventKind.VERDICT, status, outcome)
            if facts is not None:
                event.facts = replace(facts, announced=bool(notices)).to_json()
            s.add(event)
            enqueue_in(s, outgoing, now)
            await s.commit()
            return invite

    async def record_renewal(
        self,
        *,
        attempt_id: int,
        invitation_id: int,
        outcome: str,
        connection: ConnectionRecord | None,
        outgoing: Sequence[Outgoing] = (),
        if_broken: Sequence[Outgoing] = (),
        facts: VerdictFacts | None = None,
    ) -> RenewalStored:
        """A renewal login's result, with the messages telling about it, in one transaction.
        With `connection` (the same Page and Instagram account as the kept one: the caller
        compared, this checks again) the kept connection takes its tokens, expiries,
        permissions and followers and is healthy again (an event says it was renewed), and
        `if_broken` is sent too when it was broken or disconnected (its managers were told).
        Without, or when the kept connection changed or ended meanwhile, it stays as it was;
        the invitation stays connected either way."""
        now = utcnow()
        async with self.session() as s:
            invite = await s.get(Invitation, invitation_id, with_for_update=True)
            kept = (
                await s.exec(select(Connection).where(Connection.invitation_id == invitation_id))
            ).first()
            buttons_off = await _take_login_buttons_off(s, invitation_id)
            if (
                invite is None
                or invite.status != InviteStatus.CONNECTED
                or kept is None
                or kept.status == ConnectionStatus.REVOKED
                or (
                    connection is not None
                    and (kept.page_id, kept.instagram_id)
                    != (connection.page_id, connection.instagram_id)
                )
            ):
                await _set_outcome(s, attempt_id, "withdrawn")
                enqueue_in(s, buttons_off, now)
                await s.commit()
                return RenewalStored.ENDED
            await _set_outcome(s, attempt_id, outcome)
            if connection is None:
                enqueue_in(s, [*outgoing, *buttons_off], now)
                await s.commit()
                return RenewalStored.FAILED
            was_told = needs_repair(kept)
            fields = _conn_fields(connection, now)
            fields["renewed_at"] = now
            if kept.health == _HEALTHY:
                fields.pop("health_changed_at")
            await s.exec(
                sa.update(Connection)
                .where(col(Connection.id) == kept.id)
                .values(**fields)
                .execution_options(synchronize_session=False)
            )
            event = new_event(
                invitation_id,
                EventKind.RENEWED,
                InviteStatus.CONNECTED,
                RECONNECTED if was_told else None,
            )
            if facts is not None:
                event.facts = facts.to_json()
            s.add(event)
            enqueue_in(s, [*outgoing, *(if_broken if was_told else ()), *buttons_off], now)
            await s.commit()
            return RenewalStored.RENEWED

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


def _superseded(now: datetime) -> dict[str, Any]:
    """An unused login state replaced by a newer one: refused from now on, and nothing of it
    kept that could still complete it."""
    return {
        "superseded_at": now,
        "state_sealed": None,
        "confirm_hash": None,
        "pending_sealed": None,
    }


def _new_attempt(
    invitation_id: int,
    telegram_user_id: int,
    *,
    now: datetime,
    ttl: timedelta,
    sealer: LoginSealer | None,
    rerequest: bool,
    renewal: bool = False,
    path: str = LoginPath.FACEBOOK,
) -> tuple[LoginAttempt, str]:
    """A fresh single-use login state (stored only as its hash, and sealed to show it again)
    and its row."""
    state = new_secret()
    attempt = LoginAttempt(
        invitation_id=invitation_id,
        telegram_user_id=telegram_user_id,
        state_hash=secret_hash(state),
        rerequest=rerequest,
        renewal=renewal,
        created_at=now,
        expires_at=now + ttl,
        state_sealed=sealer.seal(state) if sealer is not None else None,
        path=path,
    )
    return attempt, state


def _login_path(value: str | None) -> str:
    """An invitation's way in as a login state carries it: Facebook until Instagram is chosen."""
    return LoginPath.INSTAGRAM.value if value == LoginPath.INSTAGRAM else LoginPath.FACEBOOK.value


async def _forget_login_buttons(s: AsyncSession, invitation_id: int) -> list[tuple[int, int]]:
    """The (chat, message) of every message of this invitation that still carries a login
    button; forgotten here, so nothing is edited twice."""
    shown = list(
        await s.exec(
            select(LoginAttempt).where(
                LoginAttempt.invitation_id == invitation_id,
                col(LoginAttempt.button_message_id).is_not(None),
            )
        )
    )
    # Read before the UPDATE: it also clears these attributes on the loaded rows.
    buttons = [
        (a.button_chat_id, a.button_message_id)
        for a in shown
        if a.button_chat_id is not None and a.button_message_id is not None
    ]
    if shown:
        await s.exec(
            sa.update(LoginAttempt)
            .where(col(LoginAttempt.id).in_([a.id for a in shown]))
            .values(button_chat_id=None, button_message_id=None)
        )
    return buttons


async def _take_login_buttons_off(s: AsyncSession, invitation_id: int) -> list[Outgoing]:
    """Outbox rows taking the buttons off every message of this invitation that still carries a
    login button."""
    return [
        Outgoing(
            chat_id=chat_id,
            text="",
            kind=OutboxKind.EDIT_MARKUP,
            edit_message_id=message_id,
            invitation_id=invitation_id,
        )
        for chat_id, message_id in await _forget_login_buttons(s, invitation_id)
    ]


async def login_buttons_off(s: AsyncSession, invitation_id: int) -> list[Outgoing]:
    """For another repository's transaction (`bot.store.steps`): the outbox rows taking every
    login button of this invitation off its message, forgotten in `s`."""
    return await _take_login_buttons_off(s, invitation_id)


# An invitation waits for a login while its login button is out (or a retry is offered).
_WAITING_FOR_LOGIN = (InviteStatus.LOGIN_STARTED, InviteStatus.FAILED)
# The outcome of an attempt whose result could not be stored.
INTERRUPTED = "interrupted"
# The outcome of a login with a permission declined (`bot.verdict.Outcome`).
PERMISSIONS_DECLINED = "permissions_declined"


def _live_attempt(now: datetime) -> tuple[Any, ...]:
    """Conditions of a state that may still be used: unused, the newest of its invitation,
    not expired, and its invitation waiting for a login (a renewal's: connected)."""
    waiting = sa.select(Invitation.id).where(  # type: ignore[call-overload]
        col(Invitation.status).in_(_WAITING_FOR_LOGIN), col(Invitation.step) == Step.LOGIN
    )
    connected = sa.select(Invitation.id).where(  # type: ignore[call-overload]
        col(Invitation.status) == InviteStatus.CONNECTED
    )
    return (
        col(LoginAttempt.used_at).is_(None),
        col(LoginAttempt.superseded_at).is_(None),
        col(LoginAttempt.expires_at) > now,
        sa.or_(
            sa.and_(
                col(LoginAttempt.renewal) == sa.false(),
                col(LoginAttempt.invitation_id).in_(waiting),
            ),
            sa.and_(
                col(LoginAttempt.renewal) == sa.true(),
                col(LoginAttempt.invitation_id).in_(connected),
            ),
        ),
    )


async def _login_event_detail(
    s: AsyncSession, invitation_id: int, *, asked_again: bool
) -> str | None:
    """The detail of a new login's event (the timeline's sentence): "rerequest" when it is
    handed out because a permission was declined; None for the invitation's first login;
    "again" for a later one. A new link right after a login (no result in between) keeps that
    login's detail, so the two are one event (`add_event_coalesced`)."""
    if asked_again:
        return "rerequest"
    earlier = (
        await s.exec(
            select(LoginAttempt.id).where(LoginAttempt.invitation_id == invitation_id).limit(1)
        )
    ).first()
    if earlier is None:
        return None
    last = await newest_event(s, invitation_id)
    if last is not None and last.kind == EventKind.LOGIN_STARTED:
        return last.detail
    return "again"


async def _declined_before(s: AsyncSession, invitation_id: int) -> bool:
    """Whether a login of this invitation came back with a permission declined."""
    found = (
        await s.exec(
            select(LoginAttempt.id)
            .where(
                LoginAttempt.invitation_id == invitation_id,
                LoginAttempt.outcome == PERMISSIONS_DECLINED,
            )
            .limit(1)
        )
    ).first()
    return found is not None


_INVITATION_COLUMNS = tuple(Invitation.__table__.columns)  # type: ignore[attr-defined]


def _its_invitation() -> tuple[Any, ...]:
    """The attempt's invitation, column by column, for an UPDATE of the attempt to return
    (SQLite's RETURNING names only the table it updates, so no join)."""
    return tuple(
        select(c).where(c.table.c.id == col(LoginAttempt.invitation_id)).scalar_subquery()
        for c in _INVITATION_COLUMNS
    )


def _invitation_of(columns: Sequence[Any]) -> Invitation:
    """The invitation from what `_its_invitation` returned."""
    return Invitation(**{c.key: v for c, v in zip(_INVITATION_COLUMNS, columns, strict=True)})


async def _attempt_and_invitation(
    s: AsyncSession, state_hash: str
) -> tuple[LoginAttempt, Invitation | None] | None:
    """The attempt of a state and its invitation (None: no such state), in one read."""
    row = (
        await s.exec(
            select(LoginAttempt, Invitation)
            .join(
                Invitation,
                col(Invitation.id) == col(LoginAttempt.invitation_id),
                isouter=True,
            )
            .where(LoginAttempt.state_hash == state_hash)
        )
    ).first()
    if row is None:
        return None
    attempt, invite = row
    return attempt, invite


def _state_problem(
    attempt: LoginAttempt, invite: Invitation | None, now: datetime
) -> StateProblem | None:
    """Why a state cannot be used (None: it can)."""
    if attempt.used_at is not None:
        return StateProblem.USED
    if invite is None or invite.status == InviteStatus.REVOKED:
        return StateProblem.WITHDRAWN
    if invite.status == InviteStatus.CONNECTED and not attempt.renewal:
        return StateProblem.CONNECTED
    if attempt.superseded_at is not None:
        return StateProblem.SUPERSEDED
    if attempt.expires_at <= now:
        return StateProblem.EXPIRED
    if attempt.renewal:
        # A renewal is for a connected invitation only.
        return None if invite.status == InviteStatus.CONNECTED else StateProblem.SUPERSEDED
    if invite.status not in _WAITING_FOR_LOGIN or invite.step != Step.LOGIN:
        return StateProblem.SUPERSEDED  # the flow moved on without this button
    return None



async def _announced_failure_since(
    s: AsyncSession, invitation_id: int, since: datetime
) -> datetime | None:
    """When the managers were last told about a failed login of this invitation, if since."""
    rows = await s.exec(
        select(InvitationEvent)
        .where(
            InvitationEvent.invitation_id == invitation_id,
            InvitationEvent.kind == EventKind.VERDICT,
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



async def _set_outcome(s: AsyncSession, attempt_id: int, outcome: str) -> None:
    """The attempt's outcome, without reading the attempt first."""
    result = await s.exec(
        sa.update(LoginAttempt)
        .where(col(LoginAttempt.id) == attempt_id)
        .values(outcome=outcome)
        .execution_options(synchronize_session=False)
    )
    assert result.rowcount == 1


async def _keep_connection(
    s: AsyncSession, invitation_id: int, connection: ConnectionRecord, now: datetime
) -> None:
    """The invitation's connection, new or renewing the one it had (one upsert)."""
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    fields = {**_conn_fields(connection, now), "created_at": now}
    await s.exec(
        insert(Connection)
        .values(invitation_id=invitation_id, **fields)
        .on_conflict_do_update(index_elements=[col(Connection.invitation_id)], set_=fields)
    )


# Health states after which the brand's managers were told the connection broke or ended
# (`bot.health.HealthState`): a renewal that mends it tells them too.
_TOLD_HEALTH = ("broken", "disconnected")
_HEALTHY = "healthy"
# A RENEWED event's detail when the connection had broken and works again (`bot.timeline`).
RECONNECTED = "reconnected"


def _conn_fields(c: ConnectionRecord, now: datetime) -> dict[str, Any]:
    """A connection as a login made it: healthy, its checks starting afresh."""
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
        "page_token_encrypted": c.page_token_encrypted,
        # A renewed connection is active again, whatever ended the one it replaces.
        "status": ConnectionStatus.ACTIVE,
        "ended_at": None,
        "health": _HEALTHY,
        "health_reason": None,
        "health_changed_at": now,
        "checked_at": now,
        "next_check_at": c.next_check_at,
        "renewal_stage": None,
        "path": c.path,
    }
