"""The administrators' commands: brands and their managers. Thin: each handler gets who is asking
(an `Asker` the admin check let through), calls `bot.console.Console`, and sends what a pure
screen (`bot.console_screens`) makes of the result."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import BaseHandler, ContextTypes

from bot import api_key_screens
from bot import console_screens as screens
from bot.commands import Audience, command
from bot.console import MANAGER_LINK_TTL
from bot.console_files import quoted
from bot.handlers.base import Asker, HandlerBase
from bot.models import Brand, BrandPaths
from bot.screens import Screen
from bot.store.api_keys import KEY_PREFIX, PREFIX_LENGTH
from bot.store.console import row_id

log = logging.getLogger(__name__)

_A = Audience.ADMIN
# An API key's label, as the api_key table holds it.
_MAX_LABEL = 64
# Declared once: registered below, and the menus are built from them.
COMMANDS = (
    command("brand_new", _A, rank=20),
    command("brands", _A, rank=21),
    command("manager_link", _A, rank=22),
    command("managers", _A, rank=23),
    command("manager_remove", _A, rank=24),
    command("apikey", _A, rank=30),
    command("apikeys", _A, rank=31),
    command("apikey_revoke", _A, rank=32),
    command("paths", _A, rank=25),
)


class AdminHandlers(HandlerBase):
    def handlers(self) -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
        return [*self.console_commands(COMMANDS, _A)]

    async def brand_new(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        t = asker.t
        name = " ".join(context.args or []).strip()
        if not name or len(name) > 128:
            await self.reply(asker.message, Screen(t("console.admin.brand_usage")))
            return
        brand, created = await self.console.create_brand(name)
        key = "console.admin.brand_created" if created else "console.admin.brand_exists"
        await self.reply(asker.message, Screen(t(key, name=brand.name, id=brand.id)))

    async def brands(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        brands = await self.console.brands()
        await self.reply(asker.message, Screen(screens.brands_text(asker.t, brands)))

    async def _brand_arg(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> Brand | None:
        typed = (context.args or [""])[0].strip().removeprefix("#")
        number = row_id(typed)
        brand = await self.console.brand(number) if number is not None else None
        if brand is None:
            # A number that is no brand's: say so; anything else: how to name one.
            missing = typed.isascii() and typed.isdigit()
            text = (
                asker.t("console.admin.brand_missing", id=quoted(typed))
                if missing
                else asker.t("console.admin.brand_unknown", command=_command_of(asker))
            )
            await self.reply(asker.message, Screen(text))
        return brand

    async def manager_link(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        brand = await self._brand_arg(asker, context)
        if brand is None:
            return
        link = await self.console.manager_link(brand, created_by=asker.user_id)
        text = asker.t(
            "console.admin.link", brand=brand.name, link=link, days=MANAGER_LINK_TTL.days
        )
        await self.reply(asker.message, Screen(text))

    async def managers(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        brand = await self._brand_arg(asker, context)
        if brand is None:
            return
        managers = await self.console.managers(brand)
        await self.reply(asker.message, Screen(screens.managers_text(asker.t, brand, managers)))

    async def manager_remove(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        t = asker.t
        brand = await self._brand_arg(asker, context)
        if brand is None:
            return
        target = (context.args or ["", ""])[1:2]
        # Telegram ids have at most 52 bits: a longer number is nobody (and no database error).
        if not target or not target[0].isascii() or not target[0].isdigit() or len(target[0]) > 16:
            await self.reply(asker.message, Screen(t("console.admin.remove_usage")))
            return
        removed = await self.console.remove_manager(brand, int(target[0]))
        if removed is None:
            text = t("console.admin.not_a_manager", id=target[0], brand=brand.name)
        else:
            text = t("console.admin.removed", name=removed.name, id=target[0], brand=brand.name)
        await self.reply(asker.message, Screen(text))

    # --- the ways in a brand allows (issue 13) --------------------------------------------------

    async def paths(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        """`/paths brand [facebook|instagram|both]`: shows the brand's setting and what it means,
        or sets it."""
        t = asker.t
        args = context.args or []
        if not args or len(args) > 2:
            await self.reply(asker.message, Screen(t("console.admin.paths_usage")))
            return
        wanted: BrandPaths | None = None
        if len(args) == 2:
            try:
                wanted = BrandPaths(args[1].strip().casefold())
            except ValueError:
                await self.reply(asker.message, Screen(t("console.admin.paths_usage")))
                return
        brand = await self._brand_arg(asker, context)
        if brand is None or brand.id is None:
            return
        if wanted is not None:
            changed = await self.db.brands.set_login_paths(brand.id, wanted)
            brand = changed or brand
            log.info("brand %s: login paths set to %s", brand.id, wanted)
        text = screens.paths_text(
            t,
            brand,
            configured=self.settings.instagram_login_configured,
            changed=wanted is not None,
        )
        await self.reply(asker.message, Screen(text))

    # --- the read API's keys (issue 12) --------------------------------------------------------

    async def apikey(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        t = asker.t
        label = " ".join((context.args or [])[1:]).strip()
        if not context.args or len(label) > _MAX_LABEL:
            await self.reply(asker.message, Screen(t("console.admin.apikey_usage")))
            return
        brand = await self._brand_arg(asker, context)
        if brand is None:
            return
        created = await self.console.create_api_key(
            brand, created_by=asker.user_id, label=label or None
        )
        text = api_key_screens.created_text(t, brand, created, public_url=self.settings.public_url)
        await self.reply(asker.message, Screen(text))

    async def apikeys(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        brand = await self._brand_arg(asker, context)
        if brand is None:
            return
        keys = await self.console.api_keys(brand)
        await self.reply(asker.message, Screen(api_key_screens.keys_text(asker.t, brand, keys)))

    async def apikey_revoke(self, asker: Asker, context: ContextTypes.DEFAULT_TYPE) -> None:
        t = asker.t
        # As /apikeys shows it ("cbk_AbCd1234…"), or the whole key pasted: its prefix names it.
        typed = (context.args or [""])[0].strip().rstrip("….")
        if not typed.startswith(KEY_PREFIX) or not typed.isascii() or len(typed) < PREFIX_LENGTH:
            await self.reply(asker.message, Screen(t("console.admin.apikey_revoke_usage")))
            return
        prefix = typed[:PREFIX_LENGTH]
        revoked = await self.console.revoke_api_key(prefix)
        await self.reply(asker.message, Screen(api_key_screens.revoked_text(t, prefix, revoked)))


def _command_of(asker: Asker) -> str:
    """The command the admin typed ("/apikey@bot abc" → "apikey"), for the usage example."""
    first = (asker.message.text or "").split(maxsplit=1)[:1] or ["/manager_link"]
    return first[0].split("@")[0].lstrip("/") or "manager_link"
