"""The manager's side (minimal; the full console is its own issue): create invitations."""

from __future__ import annotations

from datetime import timedelta

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler, ContextTypes
from telegram.helpers import create_deep_linked_url

from bot.handlers.base import HandlerBase, sender
from bot.screens import Screen
from bot.verdict import is_valid_handle, normalize_handle

# One message per handle stays far below Telegram's per-chat limit for a handful of handles;
# larger batches are the console's bulk invite.
_MAX_HANDLES_PER_COMMAND = 20


class ManagerHandlers(HandlerBase):
    def handlers(self) -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
        return [CommandHandler("invite", self.invite)]

    async def invite(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        who = sender(update)
        if who is None:
            return
        user, message = who
        t = await self.texts(user)
        if not self.is_admin(user):
            await self.reply(message, Screen(t("invite.not_admin", user_id=user.id)))
            return
        raw = list(dict.fromkeys(context.args or []))
        if not raw or len(raw) > _MAX_HANDLES_PER_COMMAND:
            await self.reply(message, Screen(t("invite.usage")))
            return
        for word in raw:
            handle = normalize_handle(word)
            if not is_valid_handle(handle):
                await self.reply(message, Screen(t("invite.invalid_handle", handle=word[:40])))
                continue
            invite, token = await self.db.create_invitation(
                handle=handle,
                created_by=user.id,
                inviter_name=user.full_name,
                ttl=timedelta(days=self.settings.invite_ttl_days),
            )
            link = create_deep_linked_url(context.bot.username, token)
            await self.reply(
                message,
                Screen(
                    t(
                        "invite.created",
                        handle=invite.handle,
                        link=link,
                        days=self.settings.invite_ttl_days,
                    )
                ),
            )
