"""The platform's read API (issue 12): per-brand API keys, stored only as their SHA-256 hash, and
the brand's connections as the API shows them.

A key is `cbk_` and 32 random URL-safe characters; its first `PREFIX_LENGTH` characters (not
secret: too short to guess the rest from) name it in lists and in the timeline."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.sql.expression import Select

from bot.crypto import secret_hash
from bot.models import (
    ApiKey,
    Connection,
    Invitation,
    InviteStatus,
    ProfileSnapshot,
    utcnow,
)
from bot.store.base import Repository
from bot.store.events import EventKind, add_event_coalesced

KEY_PREFIX = "cbk_"
# 24 random bytes: 32 URL-safe characters.
_KEY_BYTES = 24
PREFIX_LENGTH = len(KEY_PREFIX) + 8
# Longer than any key we issue: a longer "key" is not looked up at all.
MAX_KEY_LENGTH = 64
# A key's last use is written at most this often (not on every request).
LAST_USED_EVERY = timedelta(minutes=1)


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: the only time its plaintext exists outside the caller's hands."""

    key: str
    row: ApiKey

    def __repr__(self) -> str:  # the key never shows in a repr or a log line
        return f"NewApiKey(prefix={self.row.prefix!r})"


@dataclass(frozen=True)
class Caller:
    """Who a valid key speaks for."""

    brand_id: int
    prefix: str


@dataclass(frozen=True)
class BrandConnection:
    """One of a brand's invitations with its connection and, if read already, its figures."""

    invitation: Invitation
    connection: Connection
    snapshot: ProfileSnapshot | None


class ApiKeys(Repository):
    async def create(self, *, brand_id: int, created_by: int, label: str | None) -> NewApiKey:
        key = new_api_key()
        async with self.session() as s:
            row = ApiKey(
                brand_id=brand_id,
                key_hash=secret_hash(key),
                prefix=key[:PREFIX_LENGTH],
                label=label[:64] if label else None,
                created_by=created_by,
            )
            s.add(row)
            await s.commit()
            return NewApiKey(key=key, row=row)

    async def of_brand(self, brand_id: int) -> list[ApiKey]:
        """The brand's keys, revoked ones included, oldest first."""
        async with self.session() as s:
            rows = await s.exec(
                select(ApiKey).where(ApiKey.brand_id == brand_id).order_by(col(ApiKey.id))
            )
            return list(rows)

    async def revoke(self, prefix: str) -> list[tuple[ApiKey, bool]]:
        """Revoke the keys named by `prefix` (one, unless two keys share their 8 random
        characters: then both, as a revocation fails safe), each with whether this call revoked
        it (False: it was revoked already). Empty: no key has this prefix."""
        now = utcnow()
        async with self.session() as s:
            found = list(await s.exec(select(ApiKey).where(ApiKey.prefix == prefix)))
            answer = []
            for key in found:
                fresh = key.revoked_at is None
                if fresh:
                    key.revoked_at = now
                    s.add(key)
                answer.append((key, fresh))
            await s.commit()
            return answer

    async def authenticate(self, key: str) -> Caller | None:
        """The brand a live key belongs to; None for a wrong or revoked key (alike). The lookup
        is by hash, so nothing compares the key itself character by character."""
        if not key.startswith(KEY_PREFIX) or len(key) > MAX_KEY_LENGTH:
            return None
        now = utcnow()
        async with self.session() as s:
            row = (
                await s.exec(
                    select(ApiKey).where(
                        ApiKey.key_hash == secret_hash(key), col(ApiKey.revoked_at).is_(None)
                    )
                )
            ).first()
            if row is None:
                return None
            if row.last_used_at is None or row.last_used_at < now - LAST_USED_EVERY:
                # Conditional, so concurrent requests write it once.
                await s.exec(
                    sa.update(ApiKey)
                    .where(
                        col(ApiKey.id) == row.id,
                        sa.or_(
                            col(ApiKey.last_used_at).is_(None),
                            col(ApiKey.last_used_at) < now - LAST_USED_EVERY,
                        ),
                    )
                    .values(last_used_at=now)
                )
                await s.commit()
            return Caller(brand_id=row.brand_id, prefix=row.prefix)

    # --- what the API reads ---------------------------------------------------------------------

    async def connections(
        self, brand_id: int, *, after: int, limit: int
    ) -> tuple[list[BrandConnection], bool]:
        """The brand's invitations that have a connection (live or ended), by invitation id
        from `after` on (exclusive); and whether more follow."""
        query = (
            _joined()
            .where(col(Invitation.brand_id) == brand_id, col(Invitation.id) > after)
            .order_by(col(Invitation.id))
            .limit(limit + 1)
        )
        async with self.session() as s:
            rows = [BrandConnection(*row) for row in (await s.exec(query)).all()]
        return rows[:limit], len(rows) > limit

    async def connection(self, brand_id: int, invitation_id: int) -> BrandConnection | None:
        """One of the brand's connections by its invitation's id; None for another brand's."""
        query = _joined().where(
            col(Invitation.brand_id) == brand_id, col(Invitation.id) == invitation_id
        )
        async with self.session() as s:
            row = (await s.exec(query)).first()
        return BrandConnection(*row) if row is not None else None

    async def record_token_read(self, invitation_id: int, *, prefix: str) -> None:
        """The platform read the connection's Page token with the key `prefix`: an event in the
        invitation's timeline. Reads by the same key in a row are one event whose time moves (a
        platform reading every hour would otherwise bury the rest of the timeline)."""
        async with self.session() as s, s.begin():
            invite = await s.get(Invitation, invitation_id)
            if invite is None:
                return
            await add_event_coalesced(
                s, invitation_id, EventKind.TOKEN_READ, InviteStatus(invite.status), prefix
            )


def _joined() -> Select[Invitation, Connection, ProfileSnapshot]:
    # ProfileSnapshot is None where no figures were read yet (the outer join).
    return (
        select(Invitation, Connection, ProfileSnapshot)
        .join(Connection, col(Connection.invitation_id) == col(Invitation.id))
        .outerjoin(ProfileSnapshot, col(ProfileSnapshot.connection_id) == col(Connection.id))
    )
