"""/forget: an influencer asks the bot to forget them. One confirmation button, then
`bot.meta.PrivacyService.forget` deletes their connection data, closes their invitations and
tells the managers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update, User
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot.buttons import ButtonData
from bot.commands import Audience, command
from bot.config import Settings
from bot.handlers.base import HandlerBase, acknowledge, sender
from bot.i18n import Html, Texts, pick_language
from bot.meta import PrivacyService
from bot.models import LoginPath
from bot.screens import Screen
from bot.store import Database


class ForgetChoice(StrEnum):
    CONFIRM = "forget"
    KEEP = "keep"


@dataclass(frozen=True)
class Forget(ButtonData):
    """The /forget question's buttons: `p1:<choice>`. Registered before the influencer's handler,
    which takes every other button. Carries no ids: the press acts on whoever pressed it."""

    prefix: ClassVar[str] = "p1"
    choice: ForgetChoice


# Declared once: registered below, and the menus are built from them.
COMMANDS = (command("forget", Audience.INFLUENCER, rank=41, private=True),)


class PrivacyHandlers:
    def __init__(self, *, settings: Settings, db: Database, privacy: PrivacyService) -> None:
        self.settings = settings
        self.db = db
        self.privacy = privacy

    def handlers(self) -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
        return [
            *(
                CommandHandler(
                    c.name,
                    getattr(self, c.handler_attr),
                    filters=filters.ChatType.PRIVATE if c.private else None,
                )
                for c in COMMANDS
            ),
            CallbackQueryHandler(self.press, pattern=Forget.pattern()),
        ]

    async def _texts(self, user: User) -> Texts:
        chosen = await self.db.people.remember_person(user.id, telegram_language=user.language_code)
        return Texts(
            pick_language(
                chosen=chosen,
                telegram_code=user.language_code,
                default=self.settings.default_language,
            )
        )

    async def forget(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        who = sender(update)
        if who is None:
            return
        user, message = who
        t = await self._texts(user)
        invites = await self.privacy.forgettable(user.id)
        if not invites:
            await HandlerBase.reply(message, Screen(t("privacy.forget_nothing")))
            return
        handles = ", ".join(dict.fromkeys(f"@{i.handle}" for i in invites))
        inviters = ", ".join(dict.fromkeys(i.inviter_name for i in invites))
        keyboard = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        t.plain("privacy.button_forget"),
                        callback_data=Forget(ForgetChoice.CONFIRM).pack(),
                    )
                ],
                [
                    InlineKeyboardButton(
                        t.plain("privacy.button_keep"),
                        callback_data=Forget(ForgetChoice.KEEP).pack(),
                    )
                ],
            ]
        )
        # Without a stored token the app's access at Facebook cannot be withdrawn: no promise.
        # Instagram Login connections only: nothing is withdrawn at Facebook, their Instagram
        # login is deleted, and the person is told how to remove the app in Instagram.
        held = await self.privacy.holds_token(user.id)
        paths = await self.privacy.login_paths(user.id)
        if paths and LoginPath.FACEBOOK not in paths:
            ask = "privacy.forget_ask_instagram"
        else:
            ask = "privacy.forget_ask" if held else "privacy.forget_ask_no_token"
        text = t(ask, handles=handles, inviters=inviters, platform=self.settings.platform_name)
        await HandlerBase.reply(message, Screen(text, keyboard))

    async def press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        who = sender(update)
        if query is None or who is None:
            return
        user, message = who
        t = await self._texts(user)
        pressed = Forget.parse(query.data)
        if pressed is None:
            await acknowledge(query, t.plain("stale.gone"), show_alert=True)
            await HandlerBase.clear_buttons(message)
            return
        if pressed.choice is ForgetChoice.KEEP:
            await acknowledge(query)
            await HandlerBase.clear_buttons(message)
            await HandlerBase.reply(message, Screen(t("privacy.forget_kept")))
            return
        held_token = await self.privacy.holds_token(user.id)
        paths = await self.privacy.login_paths(user.id)
        touched = await self.privacy.forget(user.id)
        if not touched:
            # A double tap (the first one forgot everything), or an older copy of the question:
            # only acknowledged, so that "done" is not followed by "nothing to forget".
            await acknowledge(query, t.plain("privacy.forget_again"))
            await HandlerBase.clear_buttons(message)
            return
        await acknowledge(query)
        await HandlerBase.clear_buttons(message)
        platform = self.settings.platform_name
        on_instagram = LoginPath.INSTAGRAM in paths
        key = "privacy.forget_done_instagram" if on_instagram else "privacy.forget_done"
        text = t(key, platform=platform)
        if not held_token and (LoginPath.FACEBOOK in paths or not on_instagram):
            # The app may still have access at Facebook: how to remove it there.
            text = Html(text + "\n\n" + t("privacy.remove_app", platform=platform))
        await HandlerBase.reply(message, Screen(text))
