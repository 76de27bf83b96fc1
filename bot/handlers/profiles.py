"""What the brand sees (issue 12): /profile for a brand's managers, /shared for the influencer,
and the Profile and Refresh buttons. Thin: who is asking and may they see it, the service, the
chart and the text.

A profile goes out as two messages: the chart (a photo, with a one-line caption) and the
figures as text with a Refresh button. A connection that needs attention answers a manager with
its health and the Remind button instead (its figures may no longer be readable).
"""

from __future__ import annotations

import logging
import time

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message, Update
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.buttons import RefreshProfile, ShowProfile
from bot.chart import render_async
from bot.commands import Audience, command
from bot.config import Settings
from bot.connect import ConnectService
from bot.console import Console
from bot.console_screens import (
    health_lines,
    needs_attention,
    reason_text,
    ref_text,
    remind_button,
    remindable,
)
from bot.handlers.base import Asker, HandlerBase, acknowledge
from bot.health import HealthState
from bot.i18n import Texts
from bot.models import InviteStatus, utcnow
from bot.profile_screens import (
    caption,
    chart_texts,
    nothing_yet,
    problem_line,
    profile_text,
    refresh_keyboard,
    shared_foot,
)
from bot.profiles import REFRESH_PAUSE, ProfileService, Seen
from bot.screens import Screen
from bot.store import Database
from bot.store.console import health_of
from bot.store.profiles import Viewed

log = logging.getLogger(__name__)

_DOUBLE_TAP_SECONDS = 5.0
COMMANDS = (
    command("profile", Audience.MANAGER, rank=13),
    command("shared", Audience.INFLUENCER, rank=35, private=True),
)


class ProfileHandlers(HandlerBase):
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        connect: ConnectService,
        console: Console,
        profiles: ProfileService,
    ) -> None:
        super().__init__(settings=settings, db=db, connect=connect, console=console)
        self.profiles = profiles
        self._pressed: dict[tuple[int, str], float] = {}  # (person, button data) -> when
        self._last_copy: dict[tuple[int, int], int] = {}  # (chat, invitation) -> message id

    def handlers(self) -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
        return [
            CommandHandler("profile", self.asking(self.profile, audience=Audience.MANAGER)),
            CommandHandler("shared", self.shared),
            CallbackQueryHandler(self.asking(self.pressed), pattern=RefreshProfile.pattern()),
            CallbackQueryHandler(self.asking(self.pressed), pattern=ShowProfile.pattern()),
        ]

    # --- managers ------------------------------------------------------------------------------

    async def profile(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        t = asker.t
        ref = (context.args or [""])[0]
        if not ref:
            await self.reply(asker.message, Screen(t("profile.usage")))
            return
        invite = await self.console.find(asker.managing, ref)
        if invite is None or invite.id is None:
            # Another brand's invitation looks exactly like a missing one.
            await self.reply(asker.message, Screen(t("console.not_found", ref=ref_text(ref))))
            return
        if len(context.args or []) > 1:
            # Several at once would be several charts: the first, and how to see the next.
            await self.reply(asker.message, Screen(t("profile.one_at_a_time", ref=ref_text(ref))))
        viewed = await self.db.profiles.connected(invite.id)
        if viewed is None:
            status = t.plain(f"console.status_name.{invite.status}")
            # Withdrawn, or connected once and ended since (the app removed on Facebook).
            ended = invite.status in (InviteStatus.REVOKED, InviteStatus.CONNECTED)
            key = "profile.ended" if ended else "profile.not_connected"
            await self.reply(
                asker.message, Screen(t(key, handle=invite.handle, status=status, ref=invite.id))
            )
            return
        await self._for_manager(asker, viewed, refresh=False)

    async def _for_manager(self, asker: Asker, viewed: Viewed, *, refresh: bool) -> None:
        t, connection, invite = asker.t, viewed.connection, viewed.invitation
        assert invite.id is not None
        state, _ = health_of(connection)
        remind = (
            [remind_button(t, invite.id, invite.handle)]
            if needs_attention(connection, now=utcnow()) and remindable(connection)
            else []
        )
        if state is HealthState.BROKEN:
            # Its figures cannot be read: its health and what can be done, not an error.
            lines: list[str] = [t("profile.attention", handle=invite.handle)]
            lines += health_lines(t, connection, handle=invite.handle)
            await self.reply(
                asker.message,
                Screen("\n".join(lines), InlineKeyboardMarkup([remind]) if remind else None),
            )
            return
        seen = await self.profiles.look(viewed, refresh=refresh)
        head = t("profile.head_manager", handle=invite.handle, brand=viewed.brand_name)
        # Due for renewal: the figures still come, with when access ends and Remind.
        foot = health_lines(t, connection, handle=invite.handle)[0] if remind else None
        await self._send(
            asker.message,
            t,
            viewed,
            seen,
            head=head,
            foot=foot,
            extra_buttons=remind,
            audience="profile",
        )

    # --- the influencer ------------------------------------------------------------------------

    async def shared(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        asked = await self.asker(update)
        if asked is None:
            return
        user, message, t = asked
        if message.chat.type != "private":
            return
        mine = await self.db.profiles.connected_of_person(user.id)
        if not mine:
            await self.reply(message, Screen(t("shared.none")))
            return
        for viewed in mine:
            await self._for_influencer(message, t, viewed, refresh=False)

    async def _for_influencer(
        self, message: Message, t: Texts, viewed: Viewed, *, refresh: bool
    ) -> None:
        brand = viewed.brand_name or self.settings.platform_name
        state, reason = health_of(viewed.connection)
        if state is HealthState.BROKEN:
            # What the brand sees now is that it cannot read anything: said so, with the way out.
            await self.reply(
                message,
                Screen(t("shared.broken", brand=brand, reason=reason_text(t, reason))),
            )
            return
        seen = await self.profiles.look(viewed, refresh=refresh)
        head = t("shared.head", brand=brand)
        foot = shared_foot(t, viewed.connection.path)
        await self._send(message, t, viewed, seen, head=head, foot=foot, audience="shared")

    # --- buttons -------------------------------------------------------------------------------

    async def pressed(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        query, t = asker.query, asker.t
        assert query is not None
        pressed = RefreshProfile.parse(query.data) or ShowProfile.parse(query.data)
        viewed = (
            await self.db.profiles.connected(pressed.invitation_id) if pressed is not None else None
        )
        manager = asker.manager
        as_manager = (
            viewed is not None
            and manager is not None
            and viewed.invitation.brand_id == manager.brand_id
        )
        as_influencer = viewed is not None and viewed.invitation.telegram_user_id == asker.user_id
        if viewed is None or not (as_manager or as_influencer):
            if pressed is None or not await self._ended(asker, pressed.invitation_id):
                # Forged, another brand's, or pressed after a role change: all look gone.
                await acknowledge(query, t.plain("profile.gone"), show_alert=True)
            return
        refresh = isinstance(pressed, RefreshProfile)
        if refresh and health_of(viewed.connection)[0] is HealthState.BROKEN:
            # Nothing will be read: its health (or the way to fix it) answers, without a toast.
            refresh = False
        if refresh:
            assert viewed.connection.id is not None
            kept = await self.db.profiles.snapshot(viewed.connection.id)
            if kept is not None and utcnow() - kept.fetched_at < REFRESH_PAUSE:
                await acknowledge(query, t.plain("profile.just_read"))
                return
        if not self._first_press(asker.user_id, query.data or ""):
            # A double tap: the first press's answer is on its way.
            await acknowledge(query)
            return
        if refresh:
            await acknowledge(query, t.plain("profile.reading"))
            await self.clear_buttons(query.message)
        else:
            await acknowledge(query)
        if as_manager:
            await self._for_manager(asker, viewed, refresh=refresh)
        else:
            await self._for_influencer(asker.message, t, viewed, refresh=refresh)

    async def _ended(self, asker: Asker, invitation_id: int) -> bool:
        """A button of a connection that has ended since (/revoke, the app removed, /forget),
        pressed by its brand's manager or by its influencer: said so, and the pressed message's
        buttons come off. False for anyone else (nothing told about whether it exists)."""
        query, t = asker.query, asker.t
        assert query is not None
        invite = await self.db.invitations.get_invitation(invitation_id)
        if invite is None or invite.id is None:
            return False
        ended = invite.status in (InviteStatus.REVOKED, InviteStatus.CONNECTED)
        manager = asker.manager
        if manager is not None and invite.brand_id == manager.brand_id:
            status = t.plain(f"console.status_name.{invite.status}")
            key = "profile.ended" if ended else "profile.not_connected"
            text = t(key, handle=invite.handle, status=status, ref=invite.id)
        elif ended and invite.telegram_user_id == asker.user_id:
            brand = await self.db.brands.brand(invite.brand_id) if invite.brand_id else None
            text = t("shared.ended", brand=brand.name if brand else self.settings.platform_name)
        else:
            return False
        await acknowledge(query)
        await self.clear_buttons(query.message)
        await self.reply(asker.message, Screen(text))
        return True

    # --- sending -------------------------------------------------------------------------------

    def _first_press(self, user_id: int, data: str) -> bool:
        """False for the same button pressed by the same person within a few seconds."""
        now = time.monotonic()
        for key in [k for k, at in self._pressed.items() if now - at > _DOUBLE_TAP_SECONDS]:
            del self._pressed[key]
        if (user_id, data) in self._pressed:
            return False
        self._pressed[(user_id, data)] = now
        return True

    async def _send(
        self,
        message: Message,
        t: Texts,
        viewed: Viewed,
        seen: Seen,
        *,
        head: str,
        foot: str | None,
        audience: str,
        extra_buttons: list[InlineKeyboardButton] | None = None,
    ) -> None:
        """The chart and the figures (`audience`: "profile" for managers, "shared" for the
        influencer: whose words the problems are told in)."""
        invite = viewed.invitation
        assert invite.id is not None
        profile = seen.profile
        if profile is None or seen.fetched_at is None:
            problem = seen.problem.value if seen.problem else "unavailable"
            screen = nothing_yet(
                t, problem, handle=invite.handle, audience=audience, path=viewed.connection.path
            )
            keyboard = refresh_keyboard(t, invite.id) if problem == "unavailable" else None
            await self.reply(message, Screen(screen.text, keyboard))
            return
        extra = (
            problem_line(
                t,
                seen.problem.value,
                handle=invite.handle,
                fetched_at=seen.fetched_at,
                audience=audience,
                path=viewed.connection.path,
            )
            if seen.problem is not None
            else None
        )
        try:
            chart = await render_async(profile, chart_texts(t, profile))
            await message.chat.send_photo(
                InputFile(chart, filename=f"profile-{profile.account.username}.png"),
                caption=caption(t, profile),
            )
        except (TelegramError, ValueError, OSError) as exc:
            # The figures still go out as text.
            log.warning("profile chart not sent: %s", type(exc).__name__)
        text = profile_text(
            t,
            profile,
            fetched_at=seen.fetched_at,
            head=head if extra is None else f"{head}\n{extra}",
            foot=foot,
            path=viewed.connection.path,
            page=viewed.connection.page_name,
            head_names=invite.handle if audience == "profile" else None,
        )
        sent = await self.reply(
            message, Screen(text, refresh_keyboard(t, invite.id, extra_buttons))
        )
        # Only the newest copy in a chat keeps its buttons: older ones would refresh it again.
        where = (sent.chat_id, invite.id)
        older = self._last_copy.get(where)
        self._last_copy[where] = sent.message_id
        if older is not None and older != sent.message_id:
            await self.take_buttons_off(message.get_bot(), sent.chat_id, older)
