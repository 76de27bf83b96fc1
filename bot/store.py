"""The one module that talks to the database.

Every function is one transaction. State changes that must not race (binding an invitation,
consuming an OAuth state, moving a flow step) are single conditional UPDATEs, so two updates of one
person, or two callbacks with one state, cannot both win — on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
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
from bot.models import (
    Connection,
    Invitation,
    InvitationEvent,
    InviteStatus,
    LoginAttempt,
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
        state = new_secret()
        now = utcnow()
        async with self.session() as s:
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
            s.add(
                LoginAttempt(
                    invitation_id=invitation_id,
                    telegram_user_id=telegram_user_id,
                    state_hash=secret_hash(state),
                    rerequest=rerequest,
                    created_at=now,
                    expires_at=now + ttl,
                )
            )
            s.add(
                _event(
                    invitation_id,
                    "login_started",
                    InviteStatus.LOGIN_STARTED,
                    "rerequest" if rerequest else None,
                )
            )
            await s.commit()
        return state

    async def consume_state(self, state: str) -> tuple[LoginAttempt, Invitation] | StateProblem:
        """Use a state exactly once. The conditional UPDATE is the lock: of two concurrent
        callbacks with the same state, one gets rowcount 1, the other 0."""
        now = utcnow()
        state_hash = secret_hash(state)
        async with self.session() as s:
            result = await s.exec(
                sa.update(LoginAttempt)  # type: ignore[call-overload]
                .where(
                    col(LoginAttempt.state_hash) == state_hash,
                    col(LoginAttempt.used_at).is_(None),
                    col(LoginAttempt.expires_at) > now,
                )
                .values(used_at=now)
            )
            attempt = (
                await s.exec(select(LoginAttempt).where(LoginAttempt.state_hash == state_hash))
            ).first()
            if attempt is None:
                return StateProblem.UNKNOWN
            if result.rowcount != 1:
                return StateProblem.USED if attempt.used_at is not None else StateProblem.EXPIRED
            invite = await s.get(Invitation, attempt.invitation_id)
            if invite is None or invite.status == InviteStatus.REVOKED:
                return StateProblem.WITHDRAWN  # leaving the block rolls the use back
            await s.commit()
            return attempt, invite

    async def record_verdict(
        self,
        *,
        attempt_id: int,
        invitation_id: int,
        outcome: str,
        connection: ConnectionRecord | None,
        outgoing: Sequence[Outgoing] = (),
    ) -> Invitation:
        """Store an attempt's result, and the messages telling people about it, in one
        transaction; with a connection, the invitation becomes connected."""
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
            s.add(_event(invitation_id, "verdict", InviteStatus(invite.status), outcome))
            enqueue_in(s, outgoing, now)
            await s.commit()
            return invite

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


def _event(
    invitation_id: int, kind: str, status: InviteStatus, detail: str | None
) -> InvitationEvent:
    return InvitationEvent(
        invitation_id=invitation_id, kind=kind, status=status, detail=detail, at=utcnow()
    )


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
