"""The brand manager's console commands and buttons. Thin: each handler gets who is asking (an
`Asker`, with their brand's manager row), calls `bot.console.Console` (every query scoped by the
asker's brand), and sends what a pure screen (`bot.console_screens`) makes of the result."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

from telegram import InlineKeyboardMarkup, InputFile, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import console_screens as screens
from bot.buttons import RemindHealth
from bot.commands import Audience, command
from bot.config import Settings
from bot.connect import ConnectService
from bot.console import Console
from bot.console_files import MAX_CSV_BYTES, CsvProblem
from bot.console_screens import (
    STATUSES,
    ConfirmRevoke,
    HealthPage,
    InviteAgain,
    ListPage,
    RevokeChoice,
    ref_text,
)
from bot.handlers.base import Asker, HandlerBase, acknowledge
from bot.models import Invitation, InviteStatus, utcnow
from bot.pace import PER_CHAT_INTERVAL
from bot.screens import Screen
from bot.store import Database
from bot.store.console import Created, NewInvitation
from bot.upkeep import Upkeep

log = logging.getLogger(__name__)

# Handles per /invite message: each gets its own photo message, and one chat takes about one
# message per second. Larger batches go through a CSV file (one report, one file back).
MAX_HANDLES_PER_COMMAND = 10

_M = Audience.MANAGER
# The console's commands, each declared once: registered below, and the menus are built from them.
COMMANDS = (
    command("invite", _M, rank=10),
    command("list", _M, rank=11),
    command("show", _M, rank=12),
    command("remind", _M, rank=13),
    command("revoke", _M, rank=14),
    command("export", _M, rank=15),
    command("stats", _M, rank=16),
    command("health", _M, rank=17),
    command("team", _M, rank=18),
)


class ManagerHandlers(HandlerBase):
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        connect: ConnectService,
        console: Console,
        upkeep: Upkeep,
    ) -> None:
        super().__init__(settings=settings, db=db, connect=connect, console=console)
        # A connection that needs attention (broken, renewal due): the Remind button under
        # /health and /show, and /remind of a connected invitation (`bot.upkeep.Upkeep.remind`).
        self.upkeep = upkeep

    def handlers(self) -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
        return [
            *self.console_commands(COMMANDS, _M),
            CallbackQueryHandler(self.asking(self.list_page), pattern=ListPage.pattern()),
            CallbackQueryHandler(self.asking(self.health_page), pattern=HealthPage.pattern()),
            CallbackQueryHandler(self.asking(self.invite_again), pattern=InviteAgain.pattern()),
            CallbackQueryHandler(self.asking(self.revoke_choice), pattern=ConfirmRevoke.pattern()),
            CallbackQueryHandler(self.asking(self.remind_health), pattern=RemindHealth.pattern()),
            MessageHandler(
                filters.Document.ALL & filters.ChatType.PRIVATE,
                self.asking(self.csv_file, audience=_M),
            ),
        ]

    # --- inviting --------------------------------------------------------------------------

    async def invite(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        t, message = asker.t, asker.message
        # `@a @b`, `@a, @b`, `@a,@b`, one per line, profile addresses: as managers paste them.
        words = self.console.split_handles(context.args or [])
        if not words:
            await self.reply(message, Screen(t("invite.usage")))
            return
        if len(words) > MAX_HANDLES_PER_COMMAND:
            await self.reply(message, Screen(t("console.too_many", most=MAX_HANDLES_PER_COMMAND)))
            return
        wanted, invalid = self.console.parse_handles(words)
        report = await self.console.invite(asker.managing, asker.name, wanted, invalid)
        problems = screens.invite_problems(t, report)
        if problems is not None:
            await self.reply(message, problems)
        await self._send_cards(asker, report.created, paced=problems is not None)

    async def invite_again(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The manager chose to invite a connected handle again: a new invitation and card."""
        query, t, manager = asker.query, asker.t, asker.manager
        assert query is not None
        raw = (query.data or "").partition(":")[2]
        pressed = InviteAgain.parse(query.data)
        connected = (
            await self.console.find(manager, str(pressed.invitation_id))
            if manager is not None and pressed is not None
            else None
        )
        if connected is None or manager is None:
            # Forged, another brand's, or from before a manager was removed: all look missing.
            ref = f"#{raw[:12]}…" if len(raw) > 12 else f"#{raw}"
            await acknowledge(query, t.plain("console.not_found", ref=ref), show_alert=True)
            return
        await _drop_button(asker.message, query.data or "")
        report = await self.console.invite(
            manager, asker.name, [NewInvitation(connected.handle)], again=True
        )
        if report.duplicates:
            # Pressed twice (or invited meanwhile): the card is there already, a toast says so.
            handle = report.duplicates[0]
            await acknowledge(
                query,
                t.plain("console.duplicate", handle=handle, id=report.open_ids.get(handle, "?")),
            )
        else:
            await acknowledge(query)
        await self._send_cards(asker, report.created, paced=False)

    async def _send_cards(self, asker: Asker, created_list: list[Created], *, paced: bool) -> None:
        """Each new invitation's card: its QR code, with the live status as the caption."""
        for number, created in enumerate(created_list):
            if number or paced:
                # One chat takes about one message per second: pace rather than meet a 429.
                await asyncio.sleep(PER_CHAT_INTERVAL)
            invite = created.invitation
            caption = await self.console.card_text(asker.t, invite, token=created.token)
            photo = self.console.qr_png(self.console.link(created.token))
            sent = await _patiently(
                partial(
                    asker.message.chat.send_photo,
                    InputFile(photo, filename=f"invite-{invite.handle}.png"),
                    caption=caption,
                    parse_mode=ParseMode.HTML,
                )
            )
            await self.console.set_card(
                invite, chat_id=sent.chat_id, message_id=sent.message_id, is_photo=True
            )

    async def csv_file(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        t, message = asker.t, asker.message
        document = message.document
        if document is None:
            return
        if (document.file_size or 0) > MAX_CSV_BYTES:
            await self.reply(message, Screen(t("console.csv.too_big")))
            return
        data = bytes(await (await document.get_file()).download_as_bytearray())
        try:
            wanted, invalid = self.console.parse_csv(data)
        except CsvProblem as problem:
            await self.reply(message, Screen(t(str(problem))))
            return
        report = await self.console.invite(asker.managing, asker.name, wanted, invalid)
        await self.reply(message, Screen(screens.csv_report(t, report)))
        if report.created:
            await message.chat.send_document(
                InputFile(self.console.links_csv(report.created), filename="invitations.csv"),
                caption=t.plain("console.csv.links_caption", count=len(report.created)),
            )

    # --- looking -----------------------------------------------------------------------------

    async def list(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        # The labels the screen shows (in either language), as well as the internal codes.
        wanted = " ".join(context.args or []).strip()
        status = screens.status_named(wanted)
        if wanted and status is None:
            await self.reply(asker.message, screens.list_usage(asker.t))
            return
        page = await self.console.list_page(asker.managing, status, 0)
        await self.reply(asker.message, screens.list_screen(asker.t, page))

    async def list_page(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        query, t = asker.query, asker.t
        assert query is not None
        pressed = ListPage.parse(query.data)
        # Forged data is refused; a page past the end (the list shrank) shows the last page.
        if asker.manager is None or pressed is None:
            await acknowledge(query, t.plain("stale.gone"), show_alert=True)
            return
        status = pressed.status if pressed.status in STATUSES else None
        page = await self.console.list_page(asker.manager, status, pressed.page)
        await self._turn_page(asker, screens.list_screen(t, page))

    async def health(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The connections that need attention, the newest problem first."""
        page = await self.console.health_page(asker.managing, 0)
        await self.reply(asker.message, screens.health_screen(asker.t, page))

    async def health_page(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        query, t = asker.query, asker.t
        assert query is not None
        pressed = HealthPage.parse(query.data)
        if asker.manager is None or pressed is None:
            await acknowledge(query, t.plain("stale.gone"), show_alert=True)
            return
        page = await self.console.health_page(asker.manager, pressed.page)
        await self._turn_page(asker, screens.health_screen(t, page))

    async def _turn_page(self, asker: Asker, screen: Screen) -> None:
        """A page button's answer: the same message shows the page pressed for."""
        assert asker.query is not None
        await acknowledge(asker.query)
        message = asker.message
        if not isinstance(message, Message):
            return
        try:
            await message.edit_text(
                screen.text, parse_mode=ParseMode.HTML, reply_markup=screen.keyboard
            )
        except BadRequest as exc:
            # The same filter pressed twice (or a page past the end): the screen is unchanged.
            if "not modified" not in exc.message.lower():
                raise

    async def show(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        invite = await self._find(asker, context, "show")
        if invite is None or invite.id is None:
            return
        facts = await self.console.show(asker.managing, invite)
        screen = screens.show_screen(
            asker.t, facts, platform=self.settings.platform_name, now=utcnow()
        )
        await self.reply(asker.message, screen)

    async def _find(
        self, asker: Asker, context: ContextTypes.DEFAULT_TYPE, command: str
    ) -> Invitation | None:
        t = asker.t
        ref = (context.args or [""])[0]
        if not ref:
            await self.reply(asker.message, Screen(t("console.ref_usage", command=command)))
            return None
        # A handle with several invitations: a reminder is for the open one.
        invite = await self.console.find(asker.managing, ref, prefer_open=command == "remind")
        if invite is None:
            # Another brand's invitation looks exactly like a missing one.
            await self.reply(asker.message, Screen(t("console.not_found", ref=ref_text(ref))))
        return invite

    # --- acting ------------------------------------------------------------------------------

    async def remind(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        invite = await self._find(asker, context, "remind")
        if invite is None:
            return
        if invite.status == InviteStatus.CONNECTED and invite.id is not None:
            # Connected: the renewal request or the breakage notice again, as Remind under
            # /health does; a working connection has nothing to remind of.
            answer = await self.upkeep.remind(asker.user_id, invite.id)
            if answer is not None:
                key, values = answer
                await self.reply(asker.message, Screen(asker.t(key, **values)))
                return
        key = await self.console.remind(asker.managing, invite)
        link = self.console.invitation_link(invite)
        await self.reply(asker.message, Screen(asker.t(key, handle=invite.handle, link=link)))

    async def remind_health(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The "Remind" button beside a connection that needs attention (/health, /show): the
        influencer gets the renewal request or the breakage notice again."""
        query, t = asker.query, asker.t
        assert query is not None
        pressed = RemindHealth.parse(query.data)
        answer = (
            await self.upkeep.remind(asker.user_id, pressed.invitation_id)
            if pressed is not None and asker.manager is not None
            else None
        )
        if answer is None:
            # Forged, another brand's, or pressed after the manager was removed: all look gone.
            await acknowledge(query, t.plain("stale.gone"), show_alert=True)
            return
        key, values = answer
        if key == "upkeep.remind.just_sent":
            # A double tap: the first tap's answer is in the chat already.
            await acknowledge(query, t.plain(key, **values))
            return
        await acknowledge(query)
        await self.reply(asker.message, Screen(t(key, **values)))

    async def revoke(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        t = asker.t
        invite = await self._find(asker, context, "revoke")
        if invite is None or invite.id is None:
            return
        others = await self.console.others(asker.managing, invite)
        if invite.status == InviteStatus.CONNECTED:
            await self.reply(asker.message, screens.revoke_question(t, invite, others))
            return
        key = await self.console.revoke(asker.managing, invite)
        answer = t(key, handle=invite.handle, ref=invite.id)
        lines = [answer, *screens.other_invitations(t, invite, others)]
        await self.reply(asker.message, Screen("\n".join(lines)))

    async def revoke_choice(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The answer to /revoke's question about a connected invitation."""
        query, t, manager, message = asker.query, asker.t, asker.manager, asker.message
        assert query is not None
        pressed = ConfirmRevoke.parse(query.data)
        invite = (
            await self.console.find(manager, str(pressed.invitation_id))
            if manager is not None and pressed is not None
            else None
        )
        if invite is None or invite.id is None or manager is None or pressed is None:
            # Forged, another brand's, or the manager was removed meanwhile.
            await acknowledge(query, t.plain("stale.gone"), show_alert=True)
            await self.clear_buttons(message)
            return
        if pressed.choice is RevokeChoice.KEEP:
            key = "console.revoke.kept"
        elif invite.status == InviteStatus.REVOKED:
            # A double tap, or withdrawn meanwhile: the first answer stands.
            already = t.plain("console.revoke.already", handle=invite.handle, ref=invite.id)
            await acknowledge(query, already)
            await self.clear_buttons(message)
            return
        else:
            key = await self.console.revoke(manager, invite)
        await acknowledge(query)
        await self.clear_buttons(message)
        await self.reply(message, Screen(t(key, handle=invite.handle, ref=invite.id)))

    async def export(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        data = await self.console.export_csv(asker.managing.brand_id, asker.t)
        await asker.message.chat.send_document(
            InputFile(data, filename="invitations-export.csv"),
            caption=asker.t.plain("console.export.caption"),
        )

    async def stats(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        funnel = await self.console.funnel(asker.managing)
        health = await self.console.health_counts(asker.managing)
        await self.reply(asker.message, Screen(screens.funnel_text(asker.t, funnel, health)))

    async def team(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        t, message = asker.t, asker.message
        if message.chat.type not in (ChatType.GROUP, ChatType.SUPERGROUP):
            await self.reply(message, Screen(t("console.team.not_group")))
            return
        brand = await self.console.register_team_chat(asker.managing, message.chat.id)
        await self.reply(
            message, Screen(t("console.team.registered", brand=brand.name if brand else ""))
        )


async def _drop_button(message: object, data: str) -> None:
    """Take the pressed button off (the others stay), so it is not pressed twice by mistake."""
    if not isinstance(message, Message) or message.reply_markup is None:
        return
    rows = [
        [b for b in row if b.callback_data != data] for row in message.reply_markup.inline_keyboard
    ]
    rows = [row for row in rows if row]
    try:
        await message.edit_reply_markup(reply_markup=InlineKeyboardMarkup(rows) if rows else None)
    except TelegramError as exc:
        log.info("could not update the buttons: %s", exc)


async def _patiently(send: Callable[[], Awaitable[Message]]) -> Message:
    """A reply that may meet Telegram's per-chat limit: wait as told, then send again."""
    for _ in range(5):
        try:
            return await send()
        except RetryAfter as exc:
            delay = exc.retry_after
            await asyncio.sleep(delay.total_seconds() if isinstance(delay, timedelta) else delay)
    return await send()
