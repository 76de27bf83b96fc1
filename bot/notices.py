"""Telling people things they did not just ask for: the manager's live card, notices to a brand's
managers and team chat, messages to an influencer. Built first in the composition root and
passed to every service that tells someone something.

`Notices` knows each person's language (`texts_for`), turns pure screens (`bot.screens`,
`bot.console_screens`) into outbox rows (`Outgoing`, written in the transaction of the event that
causes them, or enqueued here), and rings the `Doorbell` the delivery worker (`bot.notify`)
waits on. Reading happens first, then rendering (pure), then writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from telegram import InlineKeyboardMarkup

from bot.config import Settings
from bot.console_screens import CardFacts, card, card_text, in_flow_status, profile_button
from bot.i18n import Texts, pick_language
from bot.links import Links
from bot.models import (
    Connection,
    Invitation,
    InvitationEvent,
    InviteStatus,
    OutboxAudience,
    OutboxKind,
    utcnow,
)
from bot.screens import Screen
from bot.store import ConnectionRecord, Database, EventKind, Outgoing
from bot.store.audience import Audience, Listener
from bot.store.steps import CardOwner

log = logging.getLogger(__name__)

# Notices wait this long for others to the same chat, so a burst of results reaches a manager as a
# few combined messages instead of one per second for minutes.
NOTICE_GATHER = timedelta(seconds=1)


class Doorbell:
    """Rung whenever something was written to the outbox; the delivery worker waits on it.
    Created before both, so neither needs the other."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ring(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Until rung (or `seconds` passed), then ready for the next ring."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=seconds)
        self._event.clear()


def outgoing(
    chat_id: int,
    screen: Screen,
    *,
    kind: OutboxKind = OutboxKind.SEND,
    invitation_id: int | None = None,
    edit_message_id: int | None = None,
    audience: OutboxAudience | None = None,
    brand_id: int | None = None,
    manager_id: int | None = None,
) -> Outgoing:
    """A screen as an outbox row."""
    return Outgoing(
        chat_id=chat_id,
        text=screen.text,
        keyboard=screen.keyboard.to_json() if screen.keyboard else None,
        kind=kind,
        invitation_id=invitation_id,
        edit_message_id=edit_message_id,
        delay=NOTICE_GATHER if kind == OutboxKind.NOTICE else timedelta(0),
        audience=audience,
        brand_id=brand_id,
        manager_id=manager_id,
    )


ScreenFor = Callable[[Texts], Screen]


class Notices:
    def __init__(
        self, *, db: Database, settings: Settings, links: Links, doorbell: Doorbell
    ) -> None:
        self._db = db
        self._settings = settings
        self.links = links
        self.doorbell = doorbell

    # --- languages -----------------------------------------------------------------------------

    def texts_in(self, chosen: str | None, telegram_code: str | None) -> Texts:
        """The texts for a chosen language and a Telegram app's, as a query returned them."""
        return Texts(
            pick_language(
                chosen=chosen, telegram_code=telegram_code, default=self._settings.default_language
            )
        )

    async def texts_for(self, telegram_id: int) -> Texts:
        """The texts of a person we are not talking to right now."""
        chosen, seen = await self._db.people.language_of(telegram_id)
        return self.texts_in(chosen, seen)

    # --- writing -------------------------------------------------------------------------------

    def ring(self) -> None:
        """Something was written to the outbox (e.g. by a step's transaction): deliver it."""
        self.doorbell.ring()

    async def send(self, rows: Sequence[Outgoing]) -> None:
        """Rows not written with an event's transaction: enqueued now, and delivered."""
        if rows:
            await self._db.outbox.enqueue(list(rows))
            self.ring()

    # --- the live card -------------------------------------------------------------------------

    async def card_facts(
        self,
        invite: Invitation,
        *,
        token: str | None = None,
        connection: Connection | ConnectionRecord | None = None,
        events: Sequence[InvitationEvent] | None = None,
        at: datetime | None = None,
    ) -> CardFacts:
        """What the card shows, read before it is rendered (`console_screens.card_text`).
        `connection`, `events`: as the caller read them already (not read again)."""
        status = InviteStatus(invite.status)
        found: Connection | ConnectionRecord | None = connection
        failures = 0
        data_deleted = False
        if status == InviteStatus.CONNECTED and found is None:
            found = await self._db.console.connection_for(invite.id or 0)
        elif status == InviteStatus.FAILED:
            failures = await self._db.logins.failed_logins(invite.id or 0)
        elif status == InviteStatus.REVOKED and invite.id is not None:
            if events is None:
                events = await self._db.invitations.events(invite.id)
            closing = [e for e in events if e.kind in (EventKind.REVOKED, EventKind.DATA_DELETED)]
            data_deleted = bool(closing) and closing[-1].kind == EventKind.DATA_DELETED
        return CardFacts(
            invite=invite,
            link=self.links.invitation_link(invite.token_sealed, token),
            failures=failures,
            connection=found,
            data_deleted=data_deleted,
            at=at,
        )

    async def card_outgoing(
        self,
        invite: Invitation,
        *,
        connection: ConnectionRecord | None = None,
        audience: Audience | None = None,
    ) -> list[Outgoing]:
        """The edit that brings the manager's card up to date (none if there is no card).
        The card belongs to the manager who invited: once they no longer manage the brand it
        stays as it was (the other managers hear the news as notices, and /show has the card).
        `audience`: as the caller read it already (with the failed logins of a failed one)."""
        if invite.card_chat_id is None or invite.card_message_id is None:
            return []
        status = InviteStatus(invite.status)
        if audience is None:
            audience = await self.audience(invite, count_failures=status == InviteStatus.FAILED)
        if not audience.owner_manages:
            return []
        t = self.texts_of(audience.owner)
        if status == InviteStatus.FAILED or (
            status in (InviteStatus.OPENED, InviteStatus.LOGIN_STARTED)
            or (status == InviteStatus.CONNECTED and connection is not None)
        ):
            # Everything the card shows is at hand: no further query.
            facts = CardFacts(
                invite=invite,
                link=self.links.invitation_link(invite.token_sealed, None),
                failures=audience.failed_logins,
                connection=connection,
            )
        else:
            facts = await self.card_facts(invite, connection=connection)
        keyboard = None
        if status == InviteStatus.CONNECTED and invite.id is not None:
            # What the brand connected for, one tap from the card (`bot.handlers.profiles`).
            keyboard = InlineKeyboardMarkup([[profile_button(t, invite.id)]])
        return _card_edit(invite, card_text(t, facts, now=utcnow()), keyboard)

    def card_refresh(self, invite: Invitation, owner: CardOwner) -> list[Outgoing]:
        """The card's refresh after a step of the influencer's (`bot.store.steps`), rendered
        from what the step's transaction returned, without a query (the invitation is in the
        flow: opened, login started or failed)."""
        if invite.card_chat_id is None or invite.card_message_id is None:
            return []
        if invite.brand_id is not None and owner.brand_id != invite.brand_id:
            return []  # the manager who invited no longer manages the brand (see card_outgoing)
        t = self.texts_in(owner.language, owner.telegram_language)
        status = in_flow_status(t, invite, failures=owner.failed_logins)
        now = utcnow()
        link = self.links.invitation_link(invite.token_sealed)
        return _card_edit(invite, card(t, invite, status, link=link, at=now, now=now))

    async def refresh_card(self, invitation_id: int) -> None:
        invite = await self._db.invitations.get_invitation(invitation_id)
        if invite is None:
            return
        await self.send(await self.card_outgoing(invite))

    # --- a brand's people --------------------------------------------------------------------

    async def audience(
        self, invite: Invitation, *, influencer: int | None = None, count_failures: bool = False
    ) -> Audience:
        """Who hears about this invitation, with their languages: one transaction."""
        return await self._db.audiences.of(
            invite, influencer=influencer, count_failures=count_failures
        )

    def texts_of(self, listener: Listener) -> Texts:
        return self.texts_in(listener.language, listener.telegram_language)

    async def brand_notices(
        self,
        invite: Invitation,
        screen_for: ScreenFor,
        *,
        team_screen_for: ScreenFor | None = None,
        audience: Audience | None = None,
    ) -> list[Outgoing]:
        """A notice about an invitation for everyone who manages its brand now, each in their
        language, and for the brand's team chat. Each is checked again when delivered: someone
        removed in between does not get it. `audience`: as the caller read it already."""
        if audience is None:
            audience = await self.audience(invite)
        if invite.brand_id is None:  # from before brands existed: its creator only
            only = outgoing(
                invite.created_by,
                screen_for(self.texts_of(audience.owner)),
                kind=OutboxKind.NOTICE,
                invitation_id=invite.id,
            )
            return [only]
        notices = [
            outgoing(
                manager.telegram_id,
                screen_for(self.texts_of(manager)),
                kind=OutboxKind.NOTICE,
                invitation_id=invite.id,
                **_for_manager(invite.brand_id, manager.telegram_id),
            )
            for manager in audience.managers
        ]
        team = audience.team_chat_id
        if team is None or team == invite.created_by:
            return notices
        t = Texts(self._settings.default_language)
        return [
            *notices,
            outgoing(
                team,
                (team_screen_for or screen_for)(t),
                kind=OutboxKind.NOTICE,
                invitation_id=invite.id,
                audience=OutboxAudience.TEAM,
                brand_id=invite.brand_id,
            ),
        ]

    async def team_chat_gone(self, chat_id: int) -> None:
        """The bot can no longer write to this group: if it was a brand's team chat, it is
        unregistered and the brand's managers are told (nothing is blamed on an influencer)."""
        for brand_id in await self._db.brands.unregister_team_chat(chat_id):
            brand = await self._db.brands.brand(brand_id)
            name = brand.name if brand else ""
            log.info("team chat of brand %s is gone: unregistered", brand_id)
            notices = []
            for manager in await self._db.brands.managers(brand_id):
                t = await self.texts_for(manager.telegram_id)
                notices.append(
                    outgoing(
                        manager.telegram_id,
                        Screen(t("console.team.gone", brand=name)),
                        kind=OutboxKind.NOTICE,
                        **_for_manager(brand_id, manager.telegram_id),
                    )
                )
            await self._db.outbox.enqueue(notices)
            self.ring()


def _card_edit(
    invite: Invitation, text: str, keyboard: InlineKeyboardMarkup | None = None
) -> list[Outgoing]:
    """The edit of the manager's card message to `text` (and its buttons: none but Profile)."""
    return [
        outgoing(
            invite.card_chat_id or 0,
            Screen(text, keyboard),
            kind=OutboxKind.EDIT_CAPTION if invite.card_is_photo else OutboxKind.EDIT,
            edit_message_id=invite.card_message_id,
            invitation_id=invite.id,
            **_for_manager(invite.brand_id, invite.created_by),
        )
    ]


def _for_manager(brand_id: int | None, manager_id: int) -> dict[str, Any]:
    """Outbox fields of a message for one of a brand's managers: delivered only while they
    still are one."""
    if brand_id is None:
        return {}
    return {"audience": OutboxAudience.MANAGER, "brand_id": brand_id, "manager_id": manager_id}
