"""`/webhook`, the administrators' command for a brand's platform webhook (issue 12):

    /webhook <brand>              the URL and the last deliveries
    /webhook <brand> <https-url>  set it; the signing secret is shown this once
    /webhook <brand> rotate       a new signing secret, shown this once
    /webhook <brand> test         a `ping` event
    /webhook <brand> off          remove it

Thin: parse, call `bot.brand_webhooks.BrandWebhooks`, render (`bot.webhook_screens`)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, ContextTypes

from bot import webhook_screens
from bot.brand_webhooks import BrandWebhooks
from bot.commands import Audience, command
from bot.config import Settings
from bot.connect import ConnectService
from bot.console import Console
from bot.console_files import quoted
from bot.handlers.base import Asker, HandlerBase
from bot.screens import Screen
from bot.store import Database
from bot.store.console import row_id

_A = Audience.ADMIN
COMMANDS = (command("webhook", _A, rank=35),)


class WebhookHandlers(HandlerBase):
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        connect: ConnectService,
        console: Console,
        webhooks: BrandWebhooks,
    ) -> None:
        super().__init__(settings=settings, db=db, connect=connect, console=console)
        self.webhooks = webhooks

    def handlers(self) -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
        return [*self.console_commands(COMMANDS, _A)]

    async def webhook(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        t = asker.t
        args = [a.strip() for a in context.args or [] if a.strip()]
        if not args or len(args) > 2:
            await self.reply(asker.message, Screen(t("webhook.usage")))
            return
        typed = args[0].removeprefix("#")
        number = row_id(typed)
        brand = await self.console.brand(number) if number is not None else None
        if brand is None:
            missing = typed.isascii() and typed.isdigit()
            text = (
                t("console.admin.brand_missing", id=quoted(typed))
                if missing
                else t("webhook.usage")
            )
            await self.reply(asker.message, Screen(text))
            return
        what = args[1] if len(args) == 2 else ""
        if not what:
            recent = await self.webhooks.recent(brand)
            text = webhook_screens.status_text(t, brand, recent)
        elif what.lower() == "off":
            if not brand.webhook_url:
                text = t("webhook.none", brand=brand.name, id=brand.id)
            else:
                dropped = await self.webhooks.remove(brand)
                text = (
                    t("webhook.removed", brand=brand.name, count=dropped)
                    if dropped
                    else t("webhook.removed_nothing_waiting", brand=brand.name)
                )
        elif what.lower() == "rotate":
            result = await self.webhooks.rotate(brand)
            if result.secret is not None:
                text = t("webhook.rotated", brand=brand.name, secret=result.secret)
            elif result.problem == "none":
                text = t("webhook.none", brand=brand.name, id=brand.id)
            else:
                text = t(f"webhook.problem.{result.problem}")
        elif what.lower() == "test":
            event_id = await self.webhooks.ping(brand)
            text = (
                t("webhook.pinged", brand=brand.name, event_id=event_id, id=brand.id)
                if event_id is not None
                else t("webhook.none", brand=brand.name, id=brand.id)
            )
        elif "://" in what:
            result = await self.webhooks.set_url(brand, what)
            if result.secret is not None:
                text = t(
                    "webhook.set", brand=brand.name, url=what, secret=result.secret, id=brand.id
                )
            else:
                text = t(f"webhook.problem.{result.problem}")
        else:
            text = t("webhook.usage")
        await self.reply(asker.message, Screen(text))
