"""The brand manager's console: who may act for which brand, invitations one by one or from a CSV
file, the live status card, reminders, revocation, export and the funnel.

Telegram handlers (`bot.handlers.manager`, `bot.handlers.admin`) parse and render; this module
decides and calls the storage layer, whose every console query is scoped by brand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet
from telegram.helpers import create_deep_linked_url

from bot import console_files as files
from bot.config import Settings
from bot.crypto import MANAGER_LINK_PREFIX, TokenVault, secret_hash
from bot.graph import GraphClient
from bot.i18n import LANGUAGES, Html, Language, Texts, pick_language
from bot.menus import RoleMenus
from bot.models import (
    Connection,
    ConnectionStatus,
    Invitation,
    InviteStatus,
    Manager,
    OutboxAudience,
    OutboxKind,
    utcnow,
)
from bot.notify import Notifier, outgoing
from bot.revocations import Outcome, Revocations
from bot.screens import Screen, resume_keyboard
from bot.store import ConnectionRecord, Database, EventKind, Outgoing
from bot.store.console import Created, NewInvitation
from bot.store.steps import CardOwner

log = logging.getLogger(__name__)

REMIND_EVERY = timedelta(hours=24)
PAGE_SIZE = 10


@dataclass
class InviteReport:
    created: list[Created] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line or position, raw)
    # Handles not invited because they are connected already (re-inviting is asked for).
    connected: list[Invitation] = field(default_factory=list)


class LinkSealer:
    """Keeps invitation links recoverable (to show them again and keep the live card intact)
    without storing them readable: Fernet with TOKEN_ENCRYPTION_KEYS, or, when none is set, a
    key derived from the app secret and bot token (both needed to run the bot anyway)."""

    def __init__(self, vault: TokenVault, settings: Settings) -> None:
        self._vault = vault
        material = "|".join(
            s.get_secret_value() if s else ""
            for s in (settings.facebook_app_secret, settings.telegram_bot_token)
        )
        import base64

        self._fallback = Fernet(base64.urlsafe_b64encode(bytes.fromhex(secret_hash(material))))

    def seal(self, token: str) -> str:
        return self._vault.seal(token) or self._fallback.encrypt(token.encode()).decode()

    def open(self, sealed: str | None) -> str | None:
        if not sealed:
            return None
        opened = self._vault.open(sealed)
        if opened is not None:
            return opened
        try:
            return self._fallback.decrypt(sealed.encode()).decode()
        except Exception:
            return None


class Console:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        graph: GraphClient,
        vault: TokenVault,
        notifier: Notifier,
        bot_username: Callable[[], str],
        wake_delivery: Callable[[], None],
    ) -> None:
        self.settings = settings
        self._db = db
        self._graph = graph
        self._vault = vault
        self._notifier = notifier
        self._bot_username = bot_username
        self._wake = wake_delivery
        self.links = LinkSealer(vault, settings)
        self.menus: RoleMenus | None = None  # set by the composition root
        self.revocations = Revocations(
            db=db,
            graph=graph,
            vault=vault,
            notifier=notifier,
            default_language=settings.default_language,
            wake_delivery=wake_delivery,
        )

    # --- who is asking -----------------------------------------------------------------------

    def is_admin(self, telegram_id: int) -> bool:
        return telegram_id in self.settings.admin_telegram_ids

    async def manager_for(self, telegram_id: int, name: str) -> Manager | None:
        """The manager row of this person. An admin with no brand yet, on a fresh install, gets
        the first brand (named after the platform), so `/invite` works from the first minute."""
        manager = await self._db.brands.manager(telegram_id)
        if manager is not None or not self.is_admin(telegram_id):
            return manager
        if await self._db.brands.brands():
            return None
        brand = await self._db.brands.create_brand(self.settings.platform_name)
        assert brand.id is not None
        manager = await self._db.brands.add_manager(
            brand_id=brand.id, telegram_id=telegram_id, name=name
        )
        if self.menus is not None:
            await self.menus.refresh(telegram_id)  # a manager now: their menu says so
        return manager

    def link(self, token: str) -> str:
        return create_deep_linked_url(self._bot_username(), token)

    def manager_link(self, token: str) -> str:
        return create_deep_linked_url(self._bot_username(), MANAGER_LINK_PREFIX + token)

    # --- inviting ------------------------------------------------------------------------------

    async def invite(
        self,
        manager: Manager,
        inviter_name: str,
        wanted: Sequence[NewInvitation],
        invalid: Sequence[tuple[int, str]] = (),
        *,
        again: bool = False,
    ) -> InviteReport:
        """`again`: invite a handle that is connected already (the manager chose to)."""
        created, duplicates = await self._db.console.create_invitations(
            brand_id=manager.brand_id,
            created_by=manager.telegram_id,
            inviter_name=inviter_name,
            ttl=timedelta(days=self.settings.invite_ttl_days),
            wanted=wanted,
            seal=self.links.seal,
            reinvite_connected=again,
        )
        report = InviteReport(created, [], list(invalid))
        for handle in duplicates:
            found = await self._db.console.connected_invitation_for(
                brand_id=manager.brand_id, handle=handle
            )
            is_open = await self._db.console.open_invitation_for(
                brand_id=manager.brand_id, handle=handle
            )
            if found is not None and is_open is None:
                report.connected.append(found)
            else:
                report.duplicates.append(handle)
        return report

    # The console's files (`bot.console_files`), here for the handlers, which call only the console.
    split_handles = staticmethod(files.split_handles)
    parse_handles = staticmethod(files.parse_handles)
    parse_csv = staticmethod(files.parse_csv)
    qr_png = staticmethod(files.qr_png)

    def links_csv(self, created: Sequence[Created]) -> bytes:
        return files.links_csv(created, self.link)

    # --- the live card ---------------------------------------------------------------------

    async def card_text(
        self,
        t: Texts,
        invite: Invitation,
        *,
        token: str | None = None,
        connection: ConnectionRecord | None = None,
        at: datetime | None = None,
    ) -> str:
        """`at`: when the card's news happened (/show: the last change); now by default."""
        status = await self.status_line(t, invite, connection=connection)
        return self._card(t, invite, status, token=token, at=at)

    def _card(
        self,
        t: Texts,
        invite: Invitation,
        status: str,
        *,
        token: str | None = None,
        at: datetime | None = None,
    ) -> str:
        assert invite.id is not None
        token = token or self.links.open(invite.token_sealed)
        link = self.link(token) if token else ""
        now = utcnow()
        at = at or now
        # Older than today: with the date, so that "14:02" does not read as today's.
        stamp = at.strftime("%H:%M") if at.date() == now.date() else at.strftime("%Y-%m-%d %H:%M")
        return t(
            "console.card",
            handle=invite.handle,
            id=invite.id,
            note=f" · {invite.note}" if invite.note else "",
            status=status,
            link=link,
            time=stamp,
        )

    async def status_line(
        self, t: Texts, invite: Invitation, *, connection: ConnectionRecord | None = None
    ) -> str:
        status = InviteStatus(invite.status)
        if status == InviteStatus.CONNECTED:
            found = connection or await self._db.console.connection_for(invite.id or 0)
            if isinstance(found, Connection) and found.status == ConnectionStatus.DISCONNECTED:
                return t("console.status.disconnected")
            return t(
                "console.status.connected",
                username=found.instagram_username if found else invite.handle,
                page=found.page_name if found else "",
            )
        if status == InviteStatus.FAILED:
            failures = await self._db.logins.failed_logins(invite.id or 0)
            return _in_flow_status(t, invite, failures=failures)
        if status in (InviteStatus.OPENED, InviteStatus.LOGIN_STARTED):
            return _in_flow_status(t, invite, failures=0)
        if status == InviteStatus.PENDING and invite.expires_at <= utcnow():
            return t("console.status.expired")
        if status == InviteStatus.REVOKED and invite.id is not None:
            # Closed because the influencer had their data deleted (/forget, or Facebook's data
            # deletion request), not withdrawn by the brand: the card says so.
            closing = [
                e
                for e in await self._db.invitations.events(invite.id)
                if e.kind in (EventKind.REVOKED, EventKind.DATA_DELETED)
            ]
            if closing and closing[-1].kind == EventKind.DATA_DELETED:
                return t("console.status.data_deleted")
        return t(f"console.status.{status.value}")

    async def card_outgoing(
        self, invite: Invitation, *, connection: ConnectionRecord | None = None
    ) -> list[Outgoing]:
        """The edit that brings the manager's card up to date (none if there is no card).
        The card belongs to the manager who invited: once they no longer manage the brand it
        stays as it was (the other managers hear the news as notices, and /show has the card)."""
        if invite.card_chat_id is None or invite.card_message_id is None:
            return []
        if invite.brand_id is not None:
            owner = await self._db.brands.manager(invite.created_by)
            if owner is None or owner.brand_id != invite.brand_id:
                return []
        t = await self._notifier.texts_for(invite.created_by)
        return _card_edit(invite, await self.card_text(t, invite, connection=connection))

    def card_refresh(self, invite: Invitation, owner: CardOwner) -> list[Outgoing]:
        """The card's refresh after a step of the influencer's (`bot.store.steps`), rendered
        from what the step's transaction returned, without a query (the invitation is in the
        flow: opened, login started or failed)."""
        if invite.card_chat_id is None or invite.card_message_id is None:
            return []
        if invite.brand_id is not None and owner.brand_id != invite.brand_id:
            return []  # the manager who invited no longer manages the brand (see card_outgoing)
        t = Texts(
            pick_language(
                chosen=owner.language,
                telegram_code=owner.telegram_language,
                default=self.settings.default_language,
            )
        )
        status = _in_flow_status(t, invite, failures=owner.failed_logins)
        return _card_edit(invite, self._card(t, invite, status))

    async def refresh_card(self, invitation_id: int) -> None:
        invite = await self._db.invitations.get_invitation(invitation_id)
        if invite is None:
            return
        edits = await self.card_outgoing(invite)
        if edits:
            await self._db.outbox.enqueue(edits)
            self._wake()

    def wake_delivery(self) -> None:
        """Something was written to the outbox (e.g. by a step's transaction): deliver it."""
        self._wake()

    async def brand_notices(
        self,
        invite: Invitation,
        screen_for: Callable[[Texts], Screen],
        *,
        team_screen_for: Callable[[Texts], Screen] | None = None,
    ) -> list[Outgoing]:
        """A notice about an invitation for everyone who manages its brand now, each in their
        language, and for the brand's team chat. Each is checked again when delivered: someone
        removed in between does not get it."""
        if invite.brand_id is None:  # from before brands existed: its creator only
            t = await self._notifier.texts_for(invite.created_by)
            only = outgoing(
                invite.created_by, screen_for(t), kind=OutboxKind.NOTICE, invitation_id=invite.id
            )
            return [only]
        notices = []
        for manager in await self._db.brands.managers(invite.brand_id):
            t = await self._notifier.texts_for(manager.telegram_id)
            notices.append(
                outgoing(
                    manager.telegram_id,
                    screen_for(t),
                    kind=OutboxKind.NOTICE,
                    invitation_id=invite.id,
                    **_for_manager(invite.brand_id, manager.telegram_id),
                )
            )
        return notices + await self.team_notice(invite, team_screen_for or screen_for)

    async def team_notice(
        self, invite: Invitation, screen_for: Callable[[Texts], Screen]
    ) -> list[Outgoing]:
        """The same notice for the brand's team chat, if one is registered."""
        brand = await self._db.brands.brand(invite.brand_id) if invite.brand_id else None
        if brand is None or brand.team_chat_id is None or brand.team_chat_id == invite.created_by:
            return []
        t = Texts(self.settings.default_language)
        return [
            outgoing(
                brand.team_chat_id,
                screen_for(t),
                kind=OutboxKind.NOTICE,
                invitation_id=invite.id,
                audience=OutboxAudience.TEAM,
                brand_id=brand.id,
            )
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
                t = await self._notifier.texts_for(manager.telegram_id)
                notices.append(
                    outgoing(
                        manager.telegram_id,
                        Screen(t("console.team.gone", brand=name)),
                        kind=OutboxKind.NOTICE,
                        **_for_manager(brand_id, manager.telegram_id),
                    )
                )
            await self._db.outbox.enqueue(notices)
            self._wake()

    # --- reminding, revoking ------------------------------------------------------------------

    async def remind(self, manager: Manager, invite: Invitation) -> str:
        """Returns the catalog key of the answer for the manager."""
        assert invite.id is not None
        if invite.status == InviteStatus.CONNECTED:
            return "console.remind.connected"
        if invite.status == InviteStatus.REVOKED:
            return "console.remind.revoked"
        if invite.telegram_user_id is None:
            # A re-invitation of someone connected through an earlier one: say so, rather than
            # suggest the bot cannot reach a person who uses it.
            other = await self._db.console.find_invitation(
                brand_id=manager.brand_id, ref=f"@{invite.handle}"
            )
            connected = other is not None and other.status == InviteStatus.CONNECTED
            if connected and other is not None and other.id != invite.id:
                return "console.remind.not_opened_connected"
            return "console.remind.not_opened"
        t = await self._notifier.texts_for(invite.telegram_user_id)
        message = Screen(
            t("console.remind.message", inviter=invite.inviter_name, handle=invite.handle),
            resume_keyboard(t, invite),
        )
        sent = await self._db.console.claim_reminder(
            brand_id=manager.brand_id,
            invitation_id=invite.id,
            every=REMIND_EVERY,
            outgoing=[outgoing(invite.telegram_user_id, message, invitation_id=invite.id)],
        )
        if not sent:
            return "console.remind.too_soon"
        self._wake()
        return "console.remind.sent"

    async def revoke(self, manager: Manager, invite: Invitation) -> str:
        """Returns the catalog key of the answer. Withdrawing the app's access at Facebook is
        tried now; unconfirmed, it is retried (`bot.revocations`), also by the next /revoke."""
        assert invite.id is not None
        was_revoked = invite.status == InviteStatus.REVOKED
        told: list[Outgoing] = []
        if invite.telegram_user_id is not None and invite.status != InviteStatus.REVOKED:
            t = await self._notifier.texts_for(invite.telegram_user_id)
            text = t("console.revoke.message", handle=invite.handle)
            connection = await self._db.console.connection_for(invite.id)
            if (
                connection is not None
                and connection.status == ConnectionStatus.ACTIVE
                and not connection.token_encrypted
            ):
                # No token to withdraw the app's access with: the influencer can, on Facebook.
                text = Html(
                    text
                    + "\n\n"
                    + t("privacy.remove_app", platform=self.settings.platform_name)
                )
            told.append(outgoing(invite.telegram_user_id, Screen(text), invitation_id=invite.id))
        result = await self._db.console.revoke(
            brand_id=manager.brand_id,
            invitation_id=invite.id,
            outgoing=told,
            requested_by=manager.telegram_id,
        )
        if result is None:
            return "console.not_found"
        revoked, connection = result
        await self.refresh_card(invite.id)
        self._wake()
        outcome = await self.revocations.for_invitation(invite.id)
        if was_revoked:
            return {
                Outcome.CONFIRMED: "console.revoke.facebook_confirmed_now",
                Outcome.PENDING: "console.revoke.still_pending",
            }.get(outcome or Outcome.UNREADABLE, "console.revoke.already")
        if connection is None:
            return "console.revoke.done"
        return {
            Outcome.CONFIRMED: "console.revoke.connection_done",
            Outcome.PENDING: "console.revoke.facebook_pending",
        }.get(outcome or Outcome.UNREADABLE, "console.revoke.no_token")

    # --- export and statistics -----------------------------------------------------------------

    async def export_csv(self, brand_id: int) -> bytes:
        invites = await self._db.console.list_invitations(
            brand_id=brand_id, status=None, offset=0, limit=1_000_000
        )
        events = await self._db.console.brand_events(brand_id)
        connections = await self._db.console.brand_connections(brand_id)
        return files.export_csv(invites, events, connections)

    # --- periodic: stalled invitations ---------------------------------------------------------

    async def report_stalled(self, *, hours: float) -> int:
        """Opened but no progress for `hours`: tell the brand's managers (with the invitation's
        status) and its team chat, once per stall."""
        count = 0
        for invite in await self._db.console.stalled(older_than=utcnow() - timedelta(hours=hours)):
            assert invite.id is not None
            statuses = {
                language: await self.status_line(Texts(language), invite) for language in LANGUAGES
            }

            def screen(tt: Texts, invite: Invitation = invite) -> Screen:
                return Screen(
                    tt(
                        "console.stalled",
                        handle=invite.handle,
                        hours=int(hours),
                        id=invite.id,
                        count=int(hours),
                    )
                )

            def with_status(
                tt: Texts, invite: Invitation = invite, statuses: dict[Language, str] = statuses
            ) -> Screen:
                return Screen(screen(tt, invite).text + "\n" + statuses[tt.language])

            notices = await self.brand_notices(invite, with_status, team_screen_for=screen)
            if await self._db.console.mark_stalled(invitation_id=invite.id, outgoing=notices):
                count += 1
        if count:
            self._wake()
        return count


def _in_flow_status(t: Texts, invite: Invitation, *, failures: int) -> str:
    """The card's status line of an invitation in the flow (opened, login started, failed)."""
    if invite.status == InviteStatus.FAILED:
        key = f"console.reason_name.{invite.last_reason}"
        reason = t.plain(key) if t.has(key) else (invite.last_reason or "")
        # Repeated failures send one notice; the card counts them (bot.connect).
        if failures > 1:
            return t("console.status.failed_repeated", count=failures, reason=reason)
        return t("console.status.failed", reason=reason)
    if invite.status in (InviteStatus.OPENED, InviteStatus.LOGIN_STARTED):
        return t(f"console.status.step_{invite.step}")
    return t(f"console.status.{invite.status}")


def _card_edit(invite: Invitation, text: str) -> list[Outgoing]:
    """The edit of the manager's card message to `text`."""
    return [
        outgoing(
            invite.card_chat_id or 0,
            Screen(text),
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
