"""The brand manager's console: who may act for which brand, invitations one by one or from a CSV
file, the live status card, reminders, revocation, export and the funnel, and the admins' brands
and managers.

The Telegram handlers (`bot.handlers.managers`, `bot.handlers.admins`) call only this service;
it reads what a screen needs (every console query scoped by the asker's brand), and the screens
themselves are pure functions (`bot.console_screens`). What others are told goes through
`bot.notices`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot import console_files as files
from bot.config import Settings
from bot.console_screens import (
    PAGE_SIZE,
    HealthFacts,
    InviteReport,
    ListFacts,
    ShowFacts,
    card_text,
    clamp_health_page,
    clamp_page,
    status_line,
)
from bot.crypto import TokenVault
from bot.graph import GraphClient
from bot.i18n import LANGUAGES, Html, Language, Texts
from bot.menus import RoleMenus
from bot.models import (
    ApiKey,
    Brand,
    ConnectionStatus,
    Invitation,
    InviteStatus,
    LoginPath,
    Manager,
    utcnow,
)
from bot.notices import Notices, outgoing
from bot.revocations import Outcome, Revocations
from bot.screens import Screen, resume_keyboard
from bot.store import Database, Funnel, Outgoing
from bot.store.api_keys import NewApiKey
from bot.store.console import Created, HealthCounts, NewInvitation
from bot.store.steps import CardOwner

log = logging.getLogger(__name__)

REMIND_EVERY = timedelta(hours=24)
MANAGER_LINK_TTL = timedelta(days=7)
__all__ = ["MANAGER_LINK_TTL", "PAGE_SIZE", "REMIND_EVERY", "Console", "InviteReport"]


class Console:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        graph: GraphClient,
        vault: TokenVault,
        notices: Notices,
        menus: RoleMenus,
    ) -> None:
        self.settings = settings
        self._db = db
        self._notices = notices
        self.links = notices.links
        self.menus = menus
        self.revocations = Revocations(
            db=db,
            graph=graph,
            vault=vault,
            notices=notices,
            default_language=settings.default_language,
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
        await self.menus.refresh(telegram_id)  # a manager now: their menu says so
        return manager

    def link(self, token: str) -> str:
        return self.links.link(token)

    def invitation_link(self, invite: Invitation) -> str:
        """The invitation's link as it was handed out ("" if it cannot be recovered)."""
        return self.links.invitation_link(invite.token_sealed)

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
                if is_open is not None and is_open.id is not None:
                    report.open_ids[handle] = is_open.id
        return report

    # The console's files (`bot.console_files`), here for the handlers, which call only the console.
    split_handles = staticmethod(files.split_handles)
    parse_handles = staticmethod(files.parse_handles)
    parse_csv = staticmethod(files.parse_csv)
    qr_png = staticmethod(files.qr_png)

    def links_csv(self, created: Sequence[Created]) -> bytes:
        return files.links_csv(created, self.link)

    async def set_card(
        self, invite: Invitation, *, chat_id: int, message_id: int, is_photo: bool
    ) -> None:
        """The message that is the invitation's live card (its refreshes edit it)."""
        assert invite.id is not None
        await self._db.console.set_card(
            invitation_id=invite.id, chat_id=chat_id, message_id=message_id, is_photo=is_photo
        )

    # --- the live card ---------------------------------------------------------------------

    async def card_text(
        self, t: Texts, invite: Invitation, *, token: str | None = None, at: datetime | None = None
    ) -> str:
        """`at`: when the card's news happened (/show: the last change); now by default."""
        facts = await self._notices.card_facts(invite, token=token, at=at)
        return card_text(t, facts, now=utcnow())

    def card_refresh(self, invite: Invitation, owner: CardOwner) -> list[Outgoing]:
        """The card's refresh after a step of the influencer's (`Notices.card_refresh`)."""
        return self._notices.card_refresh(invite, owner)

    async def refresh_card(self, invitation_id: int) -> None:
        await self._notices.refresh_card(invitation_id)

    def wake_delivery(self) -> None:
        """Something was written to the outbox (e.g. by a step's transaction): deliver it."""
        self._notices.ring()

    # --- looking -------------------------------------------------------------------------------

    async def find(
        self, manager: Manager, ref: str, *, prefer_open: bool = False
    ) -> Invitation | None:
        """An invitation of the manager's brand by number or handle (another brand's looks
        exactly like a missing one)."""
        return await self._db.console.find_invitation(
            brand_id=manager.brand_id, ref=ref, prefer_open=prefer_open
        )

    async def list_page(self, manager: Manager, status: str | None, page: int) -> ListFacts:
        counts = await self._db.console.status_counts(manager.brand_id)
        page = clamp_page(counts, status, page)
        invites = await self._db.console.list_invitations(
            brand_id=manager.brand_id, status=status, offset=page * PAGE_SIZE, limit=PAGE_SIZE
        )
        connected = [i.id for i in invites if i.id and i.status == InviteStatus.CONNECTED]
        return ListFacts(
            counts=counts,
            status=status,
            page=page,
            invites=invites,
            health=await self.health_counts(manager),
            connections=await self._db.console.connections_of(connected),
        )

    async def health_counts(self, manager: Manager) -> HealthCounts:
        return await self._db.console.health_counts(manager.brand_id, now=utcnow())

    async def health_page(self, manager: Manager, page: int) -> HealthFacts:
        """A /health page: the brand's connections that need attention, newest problem first."""
        counts = await self.health_counts(manager)
        page = clamp_health_page(counts, page)
        items = await self._db.console.needs_attention(
            brand_id=manager.brand_id, now=utcnow(), offset=page * PAGE_SIZE, limit=PAGE_SIZE
        )
        return HealthFacts(counts=counts, page=page, items=items)

    async def others(self, manager: Manager, invite: Invitation) -> list[Invitation]:
        """The handle's other invitations in this brand."""
        return [
            other
            for other in await self._db.console.invitations_for_handle(
                brand_id=manager.brand_id, handle=invite.handle
            )
            if other.id != invite.id
        ]

    async def show(self, manager: Manager, invite: Invitation) -> ShowFacts:
        """What /show tells about an invitation: the card as of its last change, its events,
        its connection and the handle's other invitations."""
        assert invite.id is not None
        events = await self._db.invitations.events(invite.id)
        # The card as of the invitation's last change (not of this moment).
        changed = max([invite.updated_at, *(event.at for event in events)])
        connection = await self._db.console.connection_for(invite.id)
        card = await self._notices.card_facts(
            invite, connection=connection, events=events, at=changed
        )
        return ShowFacts(
            card=card,
            events=events,
            connection=connection,
            others=await self.others(manager, invite),
        )

    async def funnel(self, manager: Manager) -> Funnel:
        return await self._db.console.funnel(manager.brand_id)

    async def register_team_chat(self, manager: Manager, chat_id: int) -> Brand | None:
        """This group hears the brand's news from now on."""
        await self._db.brands.set_team_chat(manager.brand_id, chat_id)
        return await self._db.brands.brand(manager.brand_id)

    # --- admins: brands and managers -----------------------------------------------------------

    async def create_brand(self, name: str) -> tuple[Brand, bool]:
        """The new brand and True; or, when a brand has that name already (whatever the case of
        its letters), that brand and False: no second one is created."""
        existing = await self._db.brands.brand_named(name)
        if existing is not None:
            return existing, False
        return await self._db.brands.create_brand(name), True

    async def brand(self, brand_id: int) -> Brand | None:
        return await self._db.brands.brand(brand_id)

    async def brands(self) -> list[tuple[Brand, int]]:
        """Every brand with its number of managers."""
        found = []
        for brand in await self._db.brands.brands():
            assert brand.id is not None
            found.append((brand, len(await self._db.brands.managers(brand.id))))
        return found

    async def managers(self, brand: Brand) -> list[Manager]:
        assert brand.id is not None
        return await self._db.brands.managers(brand.id)

    async def manager_link(self, brand: Brand, *, created_by: int) -> str:
        """A link that makes whoever opens it (within `MANAGER_LINK_TTL`) a manager of the brand."""
        assert brand.id is not None
        token = await self._db.brands.create_manager_link(
            brand_id=brand.id, created_by=created_by, ttl=MANAGER_LINK_TTL
        )
        return self.links.manager_link(token)

    async def remove_manager(self, brand: Brand, telegram_id: int) -> Manager | None:
        """The manager removed, or None if they were not one of the brand's managers."""
        assert brand.id is not None
        removed = await self._db.brands.remove_manager(brand_id=brand.id, telegram_id=telegram_id)
        if removed is not None:
            # Offboarded: their menu no longer offers the brand's commands. Whatever is still
            # waiting for them about the brand is dropped when it comes up for delivery.
            await self.menus.refresh(telegram_id)
        return removed

    # --- admins: the read API's keys (issue 12) -------------------------------------------------

    async def create_api_key(
        self, brand: Brand, *, created_by: int, label: str | None
    ) -> NewApiKey:
        """A new key for the brand's platform; its plaintext exists only in the answer."""
        assert brand.id is not None
        created = await self._db.api_keys.create(
            brand_id=brand.id, created_by=created_by, label=label
        )
        log.info("API key %s created for brand %s by %s", created.row.prefix, brand.id, created_by)
        return created

    async def api_keys(self, brand: Brand) -> list[ApiKey]:
        assert brand.id is not None
        return await self._db.api_keys.of_brand(brand.id)

    async def revoke_api_key(self, prefix: str) -> list[tuple[ApiKey, Brand | None, bool]]:
        """The keys named by `prefix`, each with its brand and whether this revoked it."""
        revoked = await self._db.api_keys.revoke(prefix)
        answer = []
        for key, now in revoked:
            if now:
                log.info("API key %s of brand %s revoked", key.prefix, key.brand_id)
            answer.append((key, await self._db.brands.brand(key.brand_id), now))
        return answer

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
        t = await self._notices.texts_for(invite.telegram_user_id)
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
        self._notices.ring()
        return "console.remind.sent"

    async def revoke(self, manager: Manager, invite: Invitation) -> str:
        """Returns the catalog key of the answer. Withdrawing the app's access at Facebook is
        tried now; unconfirmed, it is retried (`bot.revocations`), also by the next /revoke."""
        assert invite.id is not None
        was_revoked = invite.status == InviteStatus.REVOKED
        told: list[Outgoing] = []
        if invite.telegram_user_id is not None and invite.status != InviteStatus.REVOKED:
            t = await self._notices.texts_for(invite.telegram_user_id)
            text = t("console.revoke.message", handle=invite.handle)
            connection = await self._db.console.connection_for(invite.id)
            if (
                connection is not None
                and connection.status == ConnectionStatus.ACTIVE
                and not connection.token_encrypted
                and connection.path != LoginPath.INSTAGRAM
            ):
                # No token to withdraw the app's access with: the influencer can, on Facebook.
                text = Html(
                    text + "\n\n" + t("privacy.remove_app", platform=self.settings.platform_name)
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
        self._notices.ring()
        outcome = await self.revocations.for_invitation(invite.id)
        if was_revoked:
            return {
                Outcome.CONFIRMED: "console.revoke.facebook_confirmed_now",
                Outcome.PENDING: "console.revoke.still_pending",
            }.get(outcome or Outcome.UNREADABLE, "console.revoke.already")
        if connection is None:
            return "console.revoke.done"
        if connection.path == LoginPath.INSTAGRAM:
            # Its Instagram token was only deleted: nothing was (or can be) revoked at Facebook.
            return "console.revoke.connection_done_instagram"
        return {
            Outcome.CONFIRMED: "console.revoke.connection_done",
            Outcome.PENDING: "console.revoke.facebook_pending",
        }.get(outcome or Outcome.UNREADABLE, "console.revoke.no_token")

    # --- export and statistics -----------------------------------------------------------------

    async def export_csv(self, brand_id: int, t: Texts) -> bytes:
        """The brand's invitations as CSV; its status words in the language of `t`."""
        invites = await self._db.console.list_invitations(
            brand_id=brand_id, status=None, offset=0, limit=1_000_000
        )
        events = await self._db.console.brand_events(brand_id)
        connections = await self._db.console.brand_connections(brand_id)
        figures = await self._db.profiles.figures(
            [c.id for c in connections.values() if c.id is not None]
        )
        return files.export_csv(invites, events, connections, t, figures)

    # --- periodic: stalled invitations ---------------------------------------------------------

    async def report_stalled(self, *, hours: float) -> int:
        """Opened but no progress for `hours`: tell the brand's managers (with the invitation's
        status) and its team chat, once per stall."""
        count = 0
        for invite in await self._db.console.stalled(older_than=utcnow() - timedelta(hours=hours)):
            assert invite.id is not None
            facts = await self._notices.card_facts(invite)
            now = utcnow()
            statuses = {
                language: status_line(Texts(language), facts, now=now) for language in LANGUAGES
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

            notices = await self._notices.brand_notices(invite, with_status, team_screen_for=screen)
            if await self._db.console.mark_stalled(invitation_id=invite.id, outgoing=notices):
                count += 1
        if count:
            self._notices.ring()
        return count
