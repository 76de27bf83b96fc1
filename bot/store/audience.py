"""Who hears about an invitation, with each one's language, read in one transaction: the
influencer, the manager who invited (the live card's owner), the brand's managers now, its team
chat, and (for a failed invitation's card) the failed logins. `bot.notices` renders from it
without further queries."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Brand, Invitation, LoginAttempt, Manager, Person

_person = sa.inspect(Person).local_table
_manager = sa.inspect(Manager).local_table
_brand = sa.inspect(Brand).local_table
_attempt = sa.inspect(LoginAttempt).local_table


@dataclass(frozen=True)
class Listener:
    telegram_id: int
    language: str | None = None  # chosen with /language
    telegram_language: str | None = None  # their Telegram app's


@dataclass(frozen=True)
class Audience:
    influencer: Listener | None
    owner: Listener  # the manager who invited: the live card is theirs
    owner_manages: bool  # ... and still manages the invitation's brand (or it has none)
    managers: list[Listener] = field(default_factory=list)  # the brand's, now
    team_chat_id: int | None = None
    failed_logins: int = 0


class Audiences:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def of(
        self, invite: Invitation, *, influencer: int | None = None, count_failures: bool = False
    ) -> Audience:
        brand_id, owner_id = invite.brand_id, invite.created_by
        people = {owner_id} | ({influencer} if influencer is not None else set())
        async with self._sessions() as s, s.begin():
            conn = await s.connection()
            # The brand's managers and the inviter, whatever brand they manage now.
            managers = (
                await conn.execute(
                    sa.select(
                        _manager.c.telegram_id,
                        _manager.c.brand_id,
                        _person.c.language,
                        _person.c.telegram_language,
                    )
                    .select_from(
                        _manager.outerjoin(_person, _person.c.telegram_id == _manager.c.telegram_id)
                    )
                    .where(
                        sa.or_(
                            _manager.c.brand_id == brand_id if brand_id is not None else sa.false(),
                            _manager.c.telegram_id == owner_id,
                        )
                    )
                    .order_by(_manager.c.created_at)
                )
            ).all()
            persons = (
                await conn.execute(
                    sa.select(
                        _person.c.telegram_id, _person.c.language, _person.c.telegram_language
                    ).where(_person.c.telegram_id.in_(people))
                )
            ).all()
            team_chat_id = (
                (
                    await conn.execute(
                        sa.select(_brand.c.team_chat_id).where(_brand.c.id == brand_id)
                    )
                ).scalar_one_or_none()
                if brand_id is not None
                else None
            )
            failed = 0
            if count_failures and invite.id is not None:
                failed = int(
                    (
                        await conn.execute(
                            sa.select(sa.func.count()).where(
                                _attempt.c.invitation_id == invite.id,
                                _attempt.c.used_at.is_not(None),
                                sa.or_(
                                    _attempt.c.outcome.is_(None),
                                    _attempt.c.outcome.not_in(("connected", "withdrawn")),
                                ),
                            )
                        )
                    ).scalar_one()
                )
        known = {row.telegram_id: Listener(*row) for row in persons}
        owner_row = next((m for m in managers if m.telegram_id == owner_id), None)
        return Audience(
            influencer=known.get(influencer, Listener(influencer))
            if influencer is not None
            else None,
            owner=known.get(owner_id, Listener(owner_id)),
            owner_manages=brand_id is None
            or (owner_row is not None and owner_row.brand_id == brand_id),
            managers=[
                Listener(m.telegram_id, m.language, m.telegram_language)
                for m in managers
                if brand_id is not None and m.brand_id == brand_id
            ],
            team_chat_id=team_chat_id,
            failed_logins=failed,
        )
