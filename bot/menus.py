"""Command menus per audience (`setMyCommands` with a scope). A menu is a convenience, never the
authorization: every handler checks who is asking."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from telegram import Bot, BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from telegram.error import TelegramError

from bot.commands import Audience, Command, menu
from bot.i18n import LANGUAGES, Language, Texts

if TYPE_CHECKING:
    from bot.notices import Notices
    from bot.store import Database

log = logging.getLogger(__name__)

# The menus are built from the handler modules' declarations (`bot.handlers.registry`).
# An administrator who manages no brand gets the admin menu; on a fresh install (no brand yet)
# their first /invite creates one, so it is in their menu then.
FIRST_BRAND_COMMAND = "invite"


async def set_default_menus(bot: Bot, commands: Sequence[Command]) -> None:
    names = menu(commands, Audience.INFLUENCER)
    for language in LANGUAGES:
        t = Texts(language)
        try:
            await bot.set_my_commands(
                [BotCommand(c, t.plain(f"menu.{c}")) for c in names],
                scope=BotCommandScopeDefault(),
                language_code=None if language == "en" else language,
            )
        except TelegramError as exc:
            log.warning("could not set the command menu: %s", exc)


async def set_manager_menu(
    bot: Bot, chat_id: int, language: Language, commands: Sequence[Command], *, admin: bool
) -> None:
    t = Texts(language)
    names = menu(commands, Audience.MANAGER, *((Audience.ADMIN,) if admin else ()))
    try:
        await bot.set_my_commands(
            [BotCommand(c, t.plain(f"menu.{c}")) for c in names],
            scope=BotCommandScopeChat(chat_id),
        )
    except TelegramError as exc:
        # Typically "chat not found": the person has not started the bot yet.
        log.info("no manager menu for %s yet: %s", chat_id, exc)


async def _set_chat_menu(
    bot: Bot, chat_id: int, language: Language, names: tuple[str, ...]
) -> None:
    t = Texts(language)
    try:
        await bot.set_my_commands(
            [BotCommand(c, t.plain(f"menu.{c}")) for c in names],
            scope=BotCommandScopeChat(chat_id),
        )
    except TelegramError as exc:
        log.info("no menu for %s yet: %s", chat_id, exc)


class RoleMenus:
    """Each person's menu follows their role, set whenever it changes (the first /invite that
    makes an administrator a manager, a manager link, a removal) and at start-up, and their
    language, set with /language: a manager's commands, an administrator's, the influencer's in
    the chosen language, or none of their own (Telegram then shows the default menu, the
    influencer's, in the app's language)."""

    def __init__(
        self,
        *,
        bot: Bot,
        db: Database,
        notices: Notices,
        admins: Collection[int],
        commands: Sequence[Command],
    ) -> None:
        self._commands = commands
        self._bot = bot
        self._db = db
        self._notices = notices
        self._admins = admins

    async def refresh(self, telegram_id: int) -> None:
        admin = telegram_id in self._admins
        manager = await self._db.brands.manager(telegram_id)
        language = (await self._notices.texts_for(telegram_id)).language
        if manager is not None:
            await set_manager_menu(self._bot, telegram_id, language, self._commands, admin=admin)
        elif admin:
            fresh = () if await self._db.brands.brands() else (FIRST_BRAND_COMMAND,)
            names = (*fresh, *menu(self._commands, Audience.ADMIN))
            await _set_chat_menu(self._bot, telegram_id, language, names)
        elif (await self._db.people.language_of(telegram_id))[0] is not None:
            # An influencer who chose a language with /language: the default menu follows
            # their Telegram app's language, so their chat gets the menu in the chosen one.
            names = menu(self._commands, Audience.INFLUENCER)
            await _set_chat_menu(self._bot, telegram_id, language, names)
        else:
            try:
                await self._bot.delete_my_commands(scope=BotCommandScopeChat(telegram_id))
            except TelegramError as exc:
                log.info("could not reset the menu of %s: %s", telegram_id, exc)
