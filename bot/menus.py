"""Command menus per audience (`setMyCommands` with a scope). A menu is a convenience, never the
authorization: every handler checks who is asking."""

from __future__ import annotations

import logging

from telegram import Bot, BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from telegram.error import TelegramError

from bot.i18n import LANGUAGES, Language, Texts

log = logging.getLogger(__name__)

INFLUENCER_COMMANDS = ("start", "help", "language", "cancel", "forget")
MANAGER_COMMANDS = (
    "invite",
    "list",
    "show",
    "remind",
    "revoke",
    "export",
    "stats",
    "team",
    "help",
    "language",
)
ADMIN_COMMANDS = ("brand_new", "brands", "manager_link", "managers", "manager_remove")


async def set_default_menus(bot: Bot) -> None:
    for language in LANGUAGES:
        t = Texts(language)
        try:
            await bot.set_my_commands(
                [BotCommand(c, t.plain(f"menu.{c}")) for c in INFLUENCER_COMMANDS],
                scope=BotCommandScopeDefault(),
                language_code=None if language == "en" else language,
            )
        except TelegramError as exc:
            log.warning("could not set the command menu: %s", exc)


async def set_manager_menu(bot: Bot, chat_id: int, language: Language, *, admin: bool) -> None:
    t = Texts(language)
    names = MANAGER_COMMANDS + (ADMIN_COMMANDS if admin else ())
    try:
        await bot.set_my_commands(
            [BotCommand(c, t.plain(f"menu.{c}")) for c in names],
            scope=BotCommandScopeChat(chat_id),
        )
    except TelegramError as exc:
        # Typically "chat not found": the person has not started the bot yet.
        log.info("no manager menu for %s yet: %s", chat_id, exc)
