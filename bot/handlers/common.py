"""Help, unknown commands, and the error handler: answers for everyone."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, ContextTypes, MessageHandler, filters

from bot.commands import Audience, command
from bot.handlers.base import HandlerBase, sender
from bot.i18n import Texts, pick_language
from bot.screens import Screen

log = logging.getLogger(__name__)


# Declared once: registered below, and the menus are built from them.
COMMANDS = (command("help", Audience.INFLUENCER, Audience.MANAGER, Audience.ADMIN, rank=30),)


class CommonHandlers(HandlerBase):
    def handlers(self) -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
        return [CommandHandler(c.name, getattr(self, c.handler_attr)) for c in COMMANDS]

    def fallbacks(self) -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
        """Registered last: whatever no other handler took."""
        return [MessageHandler(filters.COMMAND & filters.ChatType.PRIVATE, self.unknown_command)]

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        asked = await self.asker(update)
        if asked is None:
            return
        user, message, t = asked
        text: str = t("help.influencer", platform=self.settings.platform_name)
        if self.is_admin(user) or await self.db.brands.manager(user.id) is not None:
            text = t("help.manager")
            if self.is_admin(user):
                text += "\n\n" + t("help.admin")
        await self.reply(message, Screen(text))

    async def unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        who = sender(update)
        if who is None:
            return
        user, message = who
        await self.reply(message, Screen((await self.texts(user))("error.unknown_command")))

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log with context (ids only, never message text or tokens) and tell the person."""
        error = context.error
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("update %s failed: %s", update_id, type(error).__name__, exc_info=error)
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        user = update.effective_user
        t = Texts(
            pick_language(
                chosen=None,
                telegram_code=user.language_code if user else None,
                default=self.settings.default_language,
            )
        )
        try:
            await update.effective_chat.send_message(t("error.generic"))
        except Exception:  # the error handler must never raise
            log.warning("could not tell chat about the error")
