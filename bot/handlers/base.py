"""What every handler needs: who is asking, in which language, and how to answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from telegram import Bot, CallbackQuery, Message, Update, User
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import CommandHandler, ContextTypes

from bot.commands import Audience, Command
from bot.config import Settings
from bot.connect import ConnectService
from bot.console import Console
from bot.fit import plain_version, refused_for_form
from bot.i18n import Texts, pick_language
from bot.models import Manager
from bot.screens import Screen
from bot.store import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Asker:
    """Who is asking, built once per update (`HandlerBase.asking`): the person, the message to
    answer, their texts, and their role: the manager row (a brand's manager) and whether they
    are an administrator. `query`: the button they pressed, if they pressed one."""

    user_id: int
    name: str
    message: Message
    t: Texts
    manager: Manager | None = None
    admin: bool = False
    query: CallbackQuery | None = None

    @property
    def managing(self) -> Manager:
        """The manager row, for handlers the manager check let through."""
        assert self.manager is not None, "not behind the manager check"
        return self.manager


AskerHandler = Callable[[Asker, ContextTypes.DEFAULT_TYPE], Awaitable[None]]
Callback = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]


class HandlerBase:
    def __init__(
        self, *, settings: Settings, db: Database, connect: ConnectService, console: Console
    ) -> None:
        self.settings = settings
        self.db = db
        self.connect = connect
        self.console = console

    def is_admin(self, user: User) -> bool:
        return user.id in self.settings.admin_telegram_ids

    async def texts(self, user: User) -> Texts:
        chosen = await self.db.people.remember_person(user.id, telegram_language=user.language_code)
        return self.texts_of(user, chosen)

    def texts_of(self, user: User, chosen: str | None) -> Texts:
        """The person's texts, given their chosen language (as a store step returned it)."""
        return Texts(
            pick_language(
                chosen=chosen,
                telegram_code=user.language_code,
                default=self.settings.default_language,
            )
        )

    async def asker(self, update: Update) -> tuple[User, Message, Texts] | None:
        """Who is asking, where to answer, and in which language (None: not for us)."""
        who = sender(update)
        if who is None:
            return None
        user, message = who
        return user, message, await self.texts(user)

    def console_commands(
        self, commands: Sequence[Command], audience: Audience
    ) -> list[CommandHandler[ContextTypes.DEFAULT_TYPE, None]]:
        """A module's declared commands, each answered by its handler method of the same name,
        for `audience` only (see `asking`)."""
        return [
            CommandHandler(c.name, self.asking(getattr(self, c.handler_attr), audience=audience))
            for c in commands
        ]

    def asking(self, handler: AskerHandler, *, audience: Audience | None = None) -> Callback:
        """The one way a console handler learns who is asking. `audience` MANAGER: only a
        brand's manager gets through (an administrator on a fresh install becomes the first
        brand's); ADMIN: only an administrator; None (a console button): anyone, with their
        manager row if they have one (each button answers the rest itself)."""

        async def asked(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            who = sender(update)
            if who is None:
                return
            user, message = who
            query = update.callback_query
            if audience is None and query is None:
                return
            t = await self.texts(user)
            admin = self.is_admin(user)
            manager = None
            if audience is None or audience is Audience.MANAGER:
                manager = await self.console.manager_for(user.id, user.full_name)
                if manager is None and audience is Audience.MANAGER:
                    await self.reply(message, Screen(t("console.not_manager", user_id=user.id)))
                    return
            elif audience is Audience.ADMIN and not admin:
                await self.reply(message, Screen(t("console.admin.only", user_id=user.id)))
                return
            asker = Asker(user.id, user.full_name, message, t, manager, admin, query)
            await handler(asker, context)

        return asked

    @staticmethod
    async def reply(message: Message, screen: Screen) -> Message:
        """Within Telegram's flood limits and retried after a 429 (`bot.pace.SharedLimiter`). A
        text Telegram refuses for its length or markup arrives as plain text instead."""
        try:
            return await message.chat.send_message(
                screen.text,
                parse_mode=ParseMode.HTML,
                reply_markup=screen.keyboard,
                disable_web_page_preview=True,
            )
        except BadRequest as exc:
            if not refused_for_form(exc.message):
                raise
            log.warning("reply refused (%s): sending it as plain text", exc.message)
        return await message.chat.send_message(
            plain_version(screen.text),
            reply_markup=screen.keyboard,
            disable_web_page_preview=True,
        )

    @staticmethod
    async def clear_buttons(message: object) -> None:
        """Take the buttons off a message that was answered, so it cannot be pressed twice.
        Best effort: an old message may no longer be editable."""
        if not isinstance(message, Message) or message.reply_markup is None:
            return
        try:
            await message.edit_reply_markup(reply_markup=None)
        except BadRequest:
            pass
        except TelegramError as exc:
            log.info("could not clear buttons: %s", exc)

    @staticmethod
    async def take_buttons_off(bot: Bot, chat_id: int, message_id: int) -> None:
        """The same for a message known by its ids (e.g. an older login button). Best effort."""
        try:
            await bot.edit_message_reply_markup(chat_id, message_id, reply_markup=None)
        except BadRequest:
            pass  # gone, too old, or without buttons already
        except TelegramError as exc:
            log.info("could not take buttons off: %s", exc)


async def acknowledge(
    query: CallbackQuery, text: str | None = None, *, show_alert: bool = False
) -> None:
    """Answer a button press (the toast, or just stop the spinner). Telegram refuses answers
    after about 15 seconds ("query is too old"); when the bot is busy that must not abort the
    step the press asked for: the person still gets its result in the chat."""
    try:
        await query.answer(text, show_alert=show_alert)
    except BadRequest as exc:
        log.info("button press could not be answered: %s", exc.message)


def sender(update: Update) -> tuple[User, Message] | None:
    """The person and the message to answer, or None for updates we do not serve."""
    user = update.effective_user
    message = update.effective_message
    if user is None or message is None or user.is_bot:
        return None
    return user, message
