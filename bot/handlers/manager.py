"""The brand manager's console and the admin's brand/manager commands. Thin: each handler checks
who is asking, calls `bot.console.Console` or the storage layer (always scoped by the asker's
brand), and renders catalog text."""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import Any, ClassVar

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
    User,
)
from telegram.constants import ChatType, MessageLimit, ParseMode
from telegram.error import BadRequest, RetryAfter, TelegramError
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.buttons import ButtonData, positive_id
from bot.commands import Audience, Command, command
from bot.console import PAGE_SIZE, InviteReport
from bot.console_files import MAX_CSV_BYTES, CsvProblem
from bot.fit import fit_lines, join_capped, telegram_length
from bot.handlers.base import HandlerBase, acknowledge, sender
from bot.i18n import LANGUAGES, Texts, catalog
from bot.models import ConnectionStatus, Invitation, InviteStatus, Manager
from bot.pace import PER_CHAT_INTERVAL
from bot.screens import Screen
from bot.store.console import Created, NewInvitation, row_id
from bot.timeline import timeline

log = logging.getLogger(__name__)

# Handles per /invite message: each gets its own photo message, and one chat takes about one
# message per second. Larger batches go through a CSV file (one report, one file back).
MAX_HANDLES_PER_COMMAND = 10
MANAGER_LINK_TTL = timedelta(days=7)
# Handles named in one line of a CSV report ("already invited: …"); the rest is "and N more".
MAX_LISTED_HANDLES = 50
_STATUSES = [s.value for s in InviteStatus]


@dataclass(frozen=True)
class ListPage(ButtonData):
    """A /list filter or page button: `l1:<status, or all>:<page>`."""

    prefix: ClassVar[str] = "l1"
    status: str
    page: int

    def __post_init__(self) -> None:
        if self.status != "all" and self.status not in _STATUSES:
            raise ValueError(f"no status {self.status!r}")


@dataclass(frozen=True)
class InviteAgain(ButtonData):
    """ "Invite again anyway", with the connected invitation's id: `ia:<id>`."""

    prefix: ClassVar[str] = "ia"
    invitation_id: int

    def __post_init__(self) -> None:
        positive_id("invitation_id", self.invitation_id)


class RevokeChoice(StrEnum):
    WITHDRAW = "y"
    KEEP = "n"


@dataclass(frozen=True)
class ConfirmRevoke(ButtonData):
    """/revoke's question about a connected invitation: `rv1:<id>:<y or n>`."""

    prefix: ClassVar[str] = "rv1"
    invitation_id: int
    choice: RevokeChoice

    def __post_init__(self) -> None:
        positive_id("invitation_id", self.invitation_id)


Handler = Callable[
    [Update, ContextTypes.DEFAULT_TYPE, User, Message, Texts, Manager], Awaitable[None]
]

_M, _A = Audience.MANAGER, Audience.ADMIN
# The console's commands, each declared once: registered below, and the menus are built from them.
COMMANDS = (
    command("invite", _M, rank=10),
    command("list", _M, rank=11),
    command("show", _M, rank=12),
    command("remind", _M, rank=13),
    command("revoke", _M, rank=14),
    command("export", _M, rank=15),
    command("stats", _M, rank=16),
    command("team", _M, rank=17),
    command("brand_new", _A, rank=20),
    command("brands", _A, rank=21),
    command("manager_link", _A, rank=22),
    command("managers", _A, rank=23),
    command("manager_remove", _A, rank=24),
)


class ManagerHandlers(HandlerBase):
    def handlers(self) -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
        def cmd(c: Command) -> CommandHandler[ContextTypes.DEFAULT_TYPE, None]:
            handler = getattr(self, c.handler_attr)
            if Audience.MANAGER in c.audience:
                handler = self._as_manager(handler)  # admin commands check the admin list
            return CommandHandler(c.name, handler)

        return [
            *(cmd(c) for c in COMMANDS),
            CallbackQueryHandler(self.list_page, pattern=ListPage.pattern()),
            CallbackQueryHandler(self.invite_again, pattern=InviteAgain.pattern()),
            CallbackQueryHandler(self.revoke_choice, pattern=ConfirmRevoke.pattern()),
            MessageHandler(
                filters.Document.ALL & filters.ChatType.PRIVATE, self._as_manager(self.csv_file)
            ),
        ]

    def _as_manager(
        self, handler: Handler
    ) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]:
        """Every console command starts here: who is asking, and for which brand."""

        async def checked(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            asked = await self.asker(update)
            if asked is None:
                return
            user, message, t = asked
            manager = await self.console.manager_for(user.id, user.full_name)
            if manager is None:
                await self.reply(message, Screen(t("console.not_manager", user_id=user.id)))
                return
            await handler(update, context, user, message, t, manager)

        return checked

    # --- inviting --------------------------------------------------------------------------

    async def invite(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        user: User,
        message: Message,
        t: Texts,
        manager: Manager,
    ) -> None:
        # `@a @b`, `@a, @b`, `@a,@b`, one per line, profile addresses: as managers paste them.
        words = self.console.split_handles(context.args or [])
        if not words:
            await self.reply(message, Screen(t("invite.usage")))
            return
        if len(words) > MAX_HANDLES_PER_COMMAND:
            await self.reply(message, Screen(t("console.too_many", most=MAX_HANDLES_PER_COMMAND)))
            return
        wanted, invalid = self.console.parse_handles(words)
        report = await self.console.invite(manager, user.full_name, wanted, invalid)
        problems = [t("invite.invalid_handle", handle=raw) for _, raw in report.invalid]
        for handle in report.duplicates:
            existing = await self.db.console.open_invitation_for(
                brand_id=manager.brand_id, handle=handle
            )
            problems.append(
                t("console.duplicate", handle=handle, id=existing.id if existing else "?")
            )
        problems.extend(
            t("console.already_connected", handle=i.handle, id=i.id) for i in report.connected
        )
        if problems:
            # One message for all of them: one chat takes about one message per second.
            keyboard = _again_keyboard(t, report.connected)
            await self.reply(message, Screen("\n".join(problems), keyboard))
        await self._send_cards(message, t, report.created, paced=bool(problems))

    async def invite_again(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The manager chose to invite a connected handle again: a new invitation and card."""
        pressing = await self._pressing(update)
        if pressing is None:
            return
        query, user, message, t, manager = pressing
        raw = (query.data or "").partition(":")[2]
        pressed = InviteAgain.parse(query.data)
        number = pressed.invitation_id if pressed is not None else None
        connected = (
            await self.db.console.find_invitation(brand_id=manager.brand_id, ref=str(number))
            if manager is not None and number is not None
            else None
        )
        if connected is None:
            # Forged, another brand's, or from before a manager was removed: all look missing.
            ref = f"#{raw[:12]}…" if len(raw) > 12 else f"#{raw}"
            await acknowledge(query, t.plain("console.not_found", ref=ref), show_alert=True)
            return
        assert manager is not None
        await _drop_button(message, query.data or "")
        report = await self.console.invite(
            manager, user.full_name, [NewInvitation(connected.handle)], again=True
        )
        if report.duplicates:
            # Pressed twice (or invited meanwhile): the card is there already, a toast says so.
            handle = report.duplicates[0]
            existing = await self.db.console.open_invitation_for(
                brand_id=manager.brand_id, handle=handle
            )
            await acknowledge(query, 
                t.plain("console.duplicate", handle=handle, id=existing.id if existing else "?")
            )
        else:
            await acknowledge(query)
        await self._send_cards(message, t, report.created, paced=False)

    async def _send_cards(
        self, message: Message, t: Texts, created_list: list[Created], *, paced: bool
    ) -> None:
        """Each new invitation's card: its QR code, with the live status as the caption."""
        for number, created in enumerate(created_list):
            if number or paced:
                # One chat takes about one message per second: pace rather than meet a 429.
                await asyncio.sleep(PER_CHAT_INTERVAL)
            invite = created.invitation
            assert invite.id is not None
            caption = await self.console.card_text(t, invite, token=created.token)
            photo = self.console.qr_png(self.console.link(created.token))
            sent = await _patiently(
                partial(
                    message.chat.send_photo,
                    InputFile(photo, filename=f"invite-{invite.handle}.png"),
                    caption=caption,
                    parse_mode=ParseMode.HTML,
                )
            )
            await self.db.console.set_card(
                invitation_id=invite.id,
                chat_id=sent.chat_id,
                message_id=sent.message_id,
                is_photo=True,
            )

    async def csv_file(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        user: User,
        message: Message,
        t: Texts,
        manager: Manager,
    ) -> None:
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
        report = await self.console.invite(manager, user.full_name, wanted, invalid)
        await self.reply(message, Screen(_csv_report(t, report)))
        if report.created:
            await message.chat.send_document(
                InputFile(self.console.links_csv(report.created), filename="invitations.csv"),
                caption=t.plain("console.csv.links_caption", count=len(report.created)),
            )

    # --- looking -----------------------------------------------------------------------------

    async def list(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        user: User,
        message: Message,
        t: Texts,
        manager: Manager,
    ) -> None:
        # The labels the screen shows (in either language), as well as the internal codes.
        wanted = " ".join(context.args or []).strip()
        status = _status_named(wanted)
        if wanted and status is None:
            labels = ", ".join(t.plain(f"console.status_name.{s}") for s in _STATUSES)
            await self.reply(message, Screen(t("console.list.usage", statuses=labels)))
            return
        await self.reply(message, await self._list_screen(t, manager, status, 0))

    async def _pressing(
        self, update: Update
    ) -> tuple[CallbackQuery, User, Message, Texts, Manager | None] | None:
        """Who pressed a console button, in which language, and as which brand's manager
        (None: not a manager; each button answers that itself)."""
        query = update.callback_query
        who = sender(update)
        if query is None or who is None:
            return None
        user, message = who
        t = await self.texts(user)
        return query, user, message, t, await self.console.manager_for(user.id, user.full_name)

    async def list_page(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        pressing = await self._pressing(update)
        if pressing is None:
            return
        query, user, message, t, manager = pressing
        pressed = ListPage.parse(query.data)
        # Forged data is refused; a page past the end (the list shrank) shows the last page.
        if manager is None or pressed is None:
            await acknowledge(query, t.plain("stale.gone"), show_alert=True)
            return
        status = pressed.status if pressed.status in _STATUSES else None
        screen = await self._list_screen(t, manager, status, pressed.page)
        await acknowledge(query)
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

    async def _list_screen(
        self, t: Texts, manager: Manager, status: str | None, page: int
    ) -> Screen:
        counts = await self.db.console.status_counts(manager.brand_id)
        total = sum(counts.values()) if status is None else counts.get(status, 0)
        page = max(0, min(page, max(0, (total - 1) // PAGE_SIZE)))
        invites = await self.db.console.list_invitations(
            brand_id=manager.brand_id, status=status, offset=page * PAGE_SIZE, limit=PAGE_SIZE
        )
        summary = " · ".join(
            f"{t.plain(f'console.status_name.{s}')}: {counts.get(s, 0)}" for s in _STATUSES
        )
        everything = sum(counts.values())
        lines = [t("console.list.header", total=everything, summary=summary, count=everything)]
        if status:
            lines.append(
                t("console.list.filtered", status=t.plain(f"console.status_name.{status}"))
            )
        for invite in invites:
            lines.append(
                t(
                    "console.list.line",
                    id=invite.id,
                    handle=invite.handle,
                    status=t.plain(f"console.status_name.{invite.status}"),
                )
            )
        if not invites:
            lines.append(t("console.list.empty"))
        nav: list[InlineKeyboardButton] = []
        code = status or "all"
        if page > 0:
            nav.append(_list_button(t.plain("console.list.prev"), code, page - 1))
        if (page + 1) * PAGE_SIZE < total:
            nav.append(_list_button(t.plain("console.list.next"), code, page + 1))
        # A filter for every status of the counts line, in the same order, then "all".
        filters_row = [_list_button(t.plain(f"console.status_name.{s}"), s, 0) for s in _STATUSES]
        filters_row.append(_list_button(t.plain("console.list.all"), "all", 0))
        rows = [nav] if nav else []
        rows.extend(filters_row[i : i + 3] for i in range(0, len(filters_row), 3))
        return Screen("\n".join(lines), InlineKeyboardMarkup(rows))

    async def show(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        user: User,
        message: Message,
        t: Texts,
        manager: Manager,
    ) -> None:
        invite = await self._find(context, message, t, manager, "show")
        if invite is None or invite.id is None:
            return
        stored = await self.db.invitations.events(invite.id)
        # The card as of the invitation's last change (not of this moment).
        changed = max([invite.updated_at, *(event.at for event in stored)])
        head = [await self.console.card_text(t, invite, at=changed), t("console.show.timeline")]
        tail: list[str] = []
        connection = await self.db.console.connection_for(invite.id)
        if connection is not None:
            # A sentence, with the ids labelled (what Meta's tools and support ask for).
            ended = connection.ended_at
            tail.append(
                t(
                    "console.show.connection"
                    if connection.status == ConnectionStatus.ACTIVE or ended is None
                    else f"console.show.connection_{connection.status}",
                    date=connection.created_at.strftime("%Y-%m-%d"),
                    ended=ended.strftime("%Y-%m-%d") if ended else "",
                    page=connection.page_name,
                    page_id=connection.page_id,
                    username=connection.instagram_username,
                    instagram_id=connection.instagram_id,
                )
            )
        tail.extend(await self._other_invitations(t, manager, invite))
        # The newest events are what the manager asks about: older ones give way first.
        room = MessageLimit.MAX_TEXT_LENGTH - telegram_length("\n".join([*head, *tail])) - 2
        events = timeline(
            t,
            stored,
            handle=invite.handle,
            platform=self.console.settings.platform_name,
            room=room,
        )
        await self.reply(message, Screen("\n".join([*head, *events, *tail])))

    async def _other_invitations(
        self, t: Texts, manager: Manager, invite: Invitation
    ) -> Sequence[str]:
        """The handle's other invitations in this brand (/show picked the most relevant one)."""
        others = [
            other
            for other in await self.db.console.invitations_for_handle(
                brand_id=manager.brand_id, handle=invite.handle
            )
            if other.id != invite.id
        ]
        if not others:
            return []
        return [t("console.show.others", handle=invite.handle)] + [
            t(
                "console.show.other",
                id=other.id,
                status=t.plain(f"console.status_name.{other.status}"),
                date=other.created_at.strftime("%Y-%m-%d"),
            )
            for other in others
        ]

    async def _find(
        self,
        context: ContextTypes.DEFAULT_TYPE,
        message: Message,
        t: Texts,
        manager: Manager,
        command: str,
    ) -> Invitation | None:
        ref = (context.args or [""])[0]
        if not ref:
            await self.reply(message, Screen(t("console.ref_usage", command=command)))
            return None
        # A handle with several invitations: a reminder is for the open one.
        invite = await self.db.console.find_invitation(
            brand_id=manager.brand_id, ref=ref, prefer_open=command == "remind"
        )
        if invite is None:
            # Another brand's invitation looks exactly like a missing one.
            await self.reply(message, Screen(t("console.not_found", ref=ref[:40])))
        return invite

    # --- acting ------------------------------------------------------------------------------

    async def remind(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        user: User,
        message: Message,
        t: Texts,
        manager: Manager,
    ) -> None:
        invite = await self._find(context, message, t, manager, "remind")
        if invite is None:
            return
        key = await self.console.remind(manager, invite)
        token = self.console.links.open(invite.token_sealed)
        link = self.console.link(token) if token else ""
        await self.reply(message, Screen(t(key, handle=invite.handle, link=link)))

    async def revoke(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        user: User,
        message: Message,
        t: Texts,
        manager: Manager,
    ) -> None:
        invite = await self._find(context, message, t, manager, "revoke")
        if invite is None or invite.id is None:
            return
        others = await self._other_invitations(t, manager, invite)
        if invite.status == InviteStatus.CONNECTED:
            # Removing a live connection is not undone by a typo: it asks first, naming which
            # invitation (a handle may have several) and listing the others.
            keyboard = InlineKeyboardMarkup(
                [
                    [
                        InlineKeyboardButton(
                            t.plain("console.revoke.confirm_yes"),
                            callback_data=ConfirmRevoke(invite.id, RevokeChoice.WITHDRAW).pack(),
                        ),
                        InlineKeyboardButton(
                            t.plain("console.revoke.confirm_no"),
                            callback_data=ConfirmRevoke(invite.id, RevokeChoice.KEEP).pack(),
                        ),
                    ]
                ]
            )
            question = t("console.revoke.confirm", handle=invite.handle, ref=invite.id)
            await self.reply(message, Screen("\n".join([question, *others]), keyboard))
            return
        key = await self.console.revoke(manager, invite)
        answer = t(key, handle=invite.handle, ref=invite.id)
        await self.reply(message, Screen("\n".join([answer, *others])))

    async def revoke_choice(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The answer to /revoke's question about a connected invitation."""
        pressing = await self._pressing(update)
        if pressing is None:
            return
        query, user, message, t, manager = pressing
        pressed = ConfirmRevoke.parse(query.data)
        invite = (
            await self.db.console.find_invitation(
                brand_id=manager.brand_id, ref=str(pressed.invitation_id)
            )
            if manager is not None and pressed is not None
            else None
        )
        if invite is None or invite.id is None:
            # Forged, another brand's, or the manager was removed meanwhile.
            await acknowledge(query, t.plain("stale.gone"), show_alert=True)
            await self.clear_buttons(message)
            return
        assert manager is not None and pressed is not None
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

    async def export(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        user: User,
        message: Message,
        t: Texts,
        manager: Manager,
    ) -> None:
        data = await self.console.export_csv(manager.brand_id)
        await message.chat.send_document(
            InputFile(data, filename="invitations-export.csv"),
            caption=t.plain("console.export.caption"),
        )

    async def stats(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        user: User,
        message: Message,
        t: Texts,
        manager: Manager,
    ) -> None:
        f = await self.db.console.funnel(manager.brand_id)
        reasons = "\n".join(
            t(
                "console.stats.reason",
                reason=t.plain(f"console.reason_name.{r}")
                if t.has(f"console.reason_name.{r}")
                else r,
                count=n,
            )
            for r, n in f.reasons
        ) or t("console.stats.no_failures")
        await self.reply(
            message,
            Screen(
                t(
                    "console.stats.text",
                    created=f.created,
                    opened=f.opened,
                    checks=f.checks_passed,
                    login=f.login_started,
                    connected=f.connected,
                    rate=_percent(f.connected, f.created),
                    reasons=reasons,
                )
            ),
        )

    async def team(
        self,
        update: Update,
        context: ContextTypes.DEFAULT_TYPE,
        user: User,
        message: Message,
        t: Texts,
        manager: Manager,
    ) -> None:
        if message.chat.type not in (ChatType.GROUP, ChatType.SUPERGROUP):
            await self.reply(message, Screen(t("console.team.not_group")))
            return
        await self.db.brands.set_team_chat(manager.brand_id, message.chat.id)
        brand = await self.db.brands.brand(manager.brand_id)
        await self.reply(
            message, Screen(t("console.team.registered", brand=brand.name if brand else ""))
        )

    # --- admins: brands and managers -----------------------------------------------------------

    async def _admin(self, update: Update) -> tuple[User, Message, Texts] | None:
        asked = await self.asker(update)
        if asked is None:
            return None
        user, message, t = asked
        if not self.is_admin(user):
            await self.reply(message, Screen(t("console.admin.only", user_id=user.id)))
            return None
        return user, message, t

    async def brand_new(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        asked = await self._admin(update)
        if asked is None:
            return
        user, message, t = asked
        name = " ".join(context.args or []).strip()
        if not name or len(name) > 128:
            await self.reply(message, Screen(t("console.admin.brand_usage")))
            return
        brand = await self.db.brands.create_brand(name)
        await self.reply(message, Screen(t("console.admin.brand_created", name=name, id=brand.id)))

    async def brands(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        asked = await self._admin(update)
        if asked is None:
            return
        user, message, t = asked
        lines = [t("console.admin.brands_header")]
        for brand in await self.db.brands.brands():
            assert brand.id is not None
            count = len(await self.db.brands.managers(brand.id))
            lines.append(
                t(
                    "console.admin.brand_line",
                    id=brand.id,
                    name=brand.name,
                    managers=count,
                    count=count,
                )
            )
        await self.reply(message, Screen(_fit(t, lines)))

    async def _brand_arg(self, context: ContextTypes.DEFAULT_TYPE, message: Message, t: Texts):  # type: ignore[no-untyped-def]
        number = row_id((context.args or [""])[0])
        brand = await self.db.brands.brand(number) if number is not None else None
        if brand is None:
            await self.reply(message, Screen(t("console.admin.brand_unknown")))
        return brand

    async def manager_link(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        asked = await self._admin(update)
        if asked is None:
            return
        user, message, t = asked
        brand = await self._brand_arg(context, message, t)
        if brand is None:
            return
        token = await self.db.brands.create_manager_link(
            brand_id=brand.id, created_by=user.id, ttl=MANAGER_LINK_TTL
        )
        link = self.console.manager_link(token)
        await self.reply(
            message,
            Screen(
                t("console.admin.link", brand=brand.name, link=link, days=MANAGER_LINK_TTL.days)
            ),
        )

    async def managers(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        asked = await self._admin(update)
        if asked is None:
            return
        user, message, t = asked
        brand = await self._brand_arg(context, message, t)
        if brand is None:
            return
        lines = [t("console.admin.managers_header", brand=brand.name)]
        for m in await self.db.brands.managers(brand.id):
            lines.append(t("console.admin.manager_line", name=m.name, id=m.telegram_id))
        await self.reply(message, Screen(_fit(t, lines)))

    async def manager_remove(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        asked = await self._admin(update)
        if asked is None:
            return
        user, message, t = asked
        brand = await self._brand_arg(context, message, t)
        if brand is None:
            return
        target = (context.args or ["", ""])[1:2]
        # Telegram ids have at most 52 bits: a longer number is nobody (and no database error).
        if not target or not target[0].isascii() or not target[0].isdigit() or len(target[0]) > 16:
            await self.reply(message, Screen(t("console.admin.remove_usage")))
            return
        removed = await self.db.brands.remove_manager(brand_id=brand.id, telegram_id=int(target[0]))
        if removed and self.console.menus is not None:
            # Offboarded: their menu no longer offers the brand's commands. Whatever is still
            # waiting for them about the brand is dropped when it comes up for delivery.
            await self.console.menus.refresh(int(target[0]))
        key = "console.admin.removed" if removed else "console.admin.not_a_manager"
        await self.reply(message, Screen(t(key, id=target[0], brand=brand.name)))


def _percent(part: int, whole: int) -> str:
    """Rounded half up, in whole numbers: 2 of 3 is 67 %."""
    return str((200 * part + whole) // (2 * whole)) if whole else "0"


def _again_keyboard(t: Texts, connected: list[Invitation]) -> InlineKeyboardMarkup | None:
    """One "invite again anyway" button per connected handle."""
    rows = []
    for invite in connected:
        assert invite.id is not None
        data = InviteAgain(invite.id).pack()
        label = t.plain("console.invite_again", handle=invite.handle)
        rows.append([InlineKeyboardButton(label, callback_data=data)])
    return InlineKeyboardMarkup(rows) if rows else None


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


def _status_named(words: str) -> str | None:
    """The status a /list filter word names: its label on the screen in any language (as the
    buttons show it), or its internal code; None for anything else."""
    wanted = " ".join(words.casefold().split())
    if not wanted:
        return None
    for status in _STATUSES:
        names = {status, status.replace("_", " ")}
        names.update(
            " ".join(catalog(language)[f"console.status_name.{status}"].casefold().split())
            for language in LANGUAGES
        )
        if wanted in names:
            return status
    return None


def _list_button(label: str, status: str, page: int) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=ListPage(status, page).pack())


def _csv_report(t: Texts, report: InviteReport) -> str:
    lines = [
        t(
            "console.csv.report",
            created=len(report.created),
            duplicates=len(report.duplicates) + len(report.connected),
            invalid=len(report.invalid),
        )
    ]
    if report.duplicates:
        lines.append(
            t("console.csv.duplicates", handles=_handles(t, [f"@{h}" for h in report.duplicates]))
        )
    if report.connected:
        handles = _handles(t, [f"@{i.handle}" for i in report.connected])
        lines.append(t("console.csv.connected", handles=handles))
    for line, raw in report.invalid:
        lines.append(t("console.csv.invalid_line", line=line, value=html.unescape(raw)))
    # Whole lines: a cut in the middle of one could cut a tag and Telegram would refuse it all.
    return fit_lines(
        lines, MessageLimit.MAX_TEXT_LENGTH, lambda n: t("console.csv.more", count=n)
    )


def _fit(t: Texts, lines: Sequence[str]) -> str:
    """A list of any length as one message: whole lines, then "and N more"."""
    return fit_lines(lines, MessageLimit.MAX_TEXT_LENGTH, lambda n: t("list.and_more", count=n))


def _handles(t: Texts, handles: Sequence[str]) -> str:
    """A report's list of handles: a file has up to 1000 rows, a message room for far fewer."""
    return join_capped(handles, MAX_LISTED_HANDLES, lambda n: t.plain("list.and_more", count=n))


async def _patiently(send: Callable[[], Awaitable[Message]]) -> Message:
    """A reply that may meet Telegram's per-chat limit: wait as told, then send again."""
    for _ in range(5):
        try:
            return await send()
        except RetryAfter as exc:
            delay = exc.retry_after
            await asyncio.sleep(delay.total_seconds() if isinstance(delay, timedelta) else delay)
    return await send()
