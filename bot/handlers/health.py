"""A manager's "Remind" beside a connection that needs attention (/health, /show): the
influencer gets the renewal request or the breakage notice again (`bot.upkeep.Upkeep.remind`).
Thin: who is asking, the service, the answer."""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, ContextTypes

from bot.buttons import RemindHealth
from bot.config import Settings
from bot.connect import ConnectService
from bot.console import Console
from bot.handlers.base import Asker, HandlerBase, acknowledge
from bot.screens import Screen
from bot.store import Database
from bot.upkeep import Upkeep


class HealthHandlers(HandlerBase):
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
        self.upkeep = upkeep

    def handlers(self) -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
        return [
            CallbackQueryHandler(self.asking(self.remind_health), pattern=RemindHealth.pattern())
        ]

    async def remind_health(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
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
