"""The composition root: builds every part, wires them, and runs the Telegram Application and the
aiohttp server side by side in one event loop.

Start-up order: settings → database (migrations) → Graph client → Telegram Application → handlers
→ HTTP server → polling. Shutdown runs it backwards, so a callback in flight can still notify.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import suppress

from aiohttp import web
from telegram import BotCommand, BotCommandScopeChat, BotCommandScopeDefault, Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder

from bot.config import Settings
from bot.connect import ConnectService
from bot.crypto import TokenVault
from bot.graph import GraphClient
from bot.handlers.common import CommonHandlers
from bot.handlers.influencer import InfluencerHandlers
from bot.handlers.manager import ManagerHandlers
from bot.i18n import LANGUAGES, Texts
from bot.notify import Notifier
from bot.store import Database
from web_callback.app import make_app

log = logging.getLogger(__name__)

_INFLUENCER_COMMANDS = ("start", "help", "language", "cancel")
_MANAGER_COMMANDS = ("invite", "help", "language")


class ConnectBot:
    """The whole product in one object: `await start()`, `await stop()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.vault = TokenVault(
            settings.token_encryption_keys.get_secret_value()
            if settings.token_encryption_keys
            else None
        )
        self.graph = GraphClient(
            base_url=settings.facebook_graph_url,
            version=settings.facebook_api_version,
            app_id=settings.facebook_app_id or "",
            app_secret=(
                settings.facebook_app_secret.get_secret_value()
                if settings.facebook_app_secret
                else ""
            ),
        )
        token = (
            settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
        )
        self.application: Application = (  # type: ignore[type-arg]
            ApplicationBuilder()
            .token(token)
            .base_url(settings.telegram_base_url)
            # Long polling holds one connection open; the rest serve sends and edits.
            .get_updates_read_timeout(40)
            .build()
        )
        self.notifier = Notifier(
            bot=self.application.bot, db=self.db, default_language=settings.default_language
        )
        self.connect = ConnectService(
            settings=settings,
            db=self.db,
            graph=self.graph,
            vault=self.vault,
            notifier=self.notifier,
        )
        self._register_handlers()
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None

    def _register_handlers(self) -> None:
        s, db, connect = self.settings, self.db, self.connect
        common = CommonHandlers(settings=s, db=db, connect=connect)
        # Order matters: specific commands first, free text next, unknown commands last.
        self.application.add_handlers(
            ManagerHandlers(settings=s, db=db, connect=connect).handlers()
        )
        self.application.add_handlers(
            InfluencerHandlers(settings=s, db=db, connect=connect).handlers()
        )
        self.application.add_handlers(common.handlers())
        self.application.add_handlers(common.fallbacks())
        self.application.add_error_handler(common.on_error)

    def bot_link(self) -> str | None:
        username = self.application.bot.username if self.application.bot._bot_user else None
        return f"https://t.me/{username}" if username else None

    async def start(self) -> None:
        self.settings.ensure_sqlite_folder()
        await self.db.migrate()
        await self.application.initialize()
        await self._set_commands()
        web_app = make_app(
            connect=self.connect,
            db=self.db,
            default_language=self.settings.default_language,
            bot_link=self.bot_link,
        )
        self._runner = web.AppRunner(web_app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or ()
        self.http_port = sockets[0].getsockname()[1] if sockets else self.settings.http_port
        await self.application.start()
        assert self.application.updater is not None
        await self.application.updater.start_polling(
            allowed_updates=[Update.MESSAGE, Update.CALLBACK_QUERY], drop_pending_updates=False
        )
        log.info(
            "ready: @%s polling, callback server on %s:%s",
            self.application.bot.username,
            self.settings.http_host,
            self.http_port,
        )

    async def stop(self) -> None:
        """Stop taking updates first, then let the HTTP server finish its requests."""
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.application.shutdown()
        await self.graph.aclose()
        await self.db.dispose()

    async def _set_commands(self) -> None:
        """Menus per audience. A menu is convenience, not authorization: handlers check roles."""
        bot = self.application.bot
        for language in LANGUAGES:
            t = Texts(language)
            code = None if language == "en" else language
            try:
                await bot.set_my_commands(
                    [BotCommand(c, t.plain(f"menu.{c}")) for c in _INFLUENCER_COMMANDS],
                    scope=BotCommandScopeDefault(),
                    language_code=code,
                )
            except TelegramError as exc:
                log.warning("could not set the command menu: %s", exc)
        t = Texts(self.settings.default_language)
        for admin in sorted(self.settings.admin_telegram_ids):
            try:
                await bot.set_my_commands(
                    [BotCommand(c, t.plain(f"menu.{c}")) for c in _MANAGER_COMMANDS],
                    scope=BotCommandScopeChat(admin),
                )
            except TelegramError as exc:
                # Typically "chat not found": the admin has not started the bot yet.
                log.info("no manager menu for %s yet: %s", admin, exc)


async def run(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then shut down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    app = ConnectBot(settings)
    try:
        await app.start()
        await stop.wait()
        log.info("shutting down")
    finally:
        await app.stop()
