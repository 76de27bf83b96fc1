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
from datetime import timedelta

from aiohttp import web
from telegram import Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import Application, ApplicationBuilder

from bot.brand_webhooks import BrandWebhooks
from bot.config import Settings
from bot.connect import ConnectService
from bot.console import Console
from bot.crypto import TokenVault
from bot.graph import GraphClient
from bot.handlers.admins import AdminHandlers
from bot.handlers.common import CommonHandlers
from bot.handlers.influencer import InfluencerHandlers
from bot.handlers.managers import ManagerHandlers
from bot.handlers.privacy import PrivacyHandlers
from bot.handlers.profiles import ProfileHandlers
from bot.handlers.registry import COMMANDS
from bot.handlers.webhooks import WebhookHandlers
from bot.i18n import Texts, pick_language
from bot.instagram_login import InstagramClient
from bot.jobs import Job, PeriodicJobs, fleet_jobs
from bot.links import Links
from bot.menus import RoleMenus, set_default_menus
from bot.meta import PrivacyService
from bot.metrics import Metrics, metrics_app
from bot.models import utcnow
from bot.notices import Doorbell, Notices
from bot.notify import DeliveryWorker
from bot.pace import Pacer, SharedLimiter
from bot.profiles import ProfileService
from bot.store import Database
from bot.telegram_http import AiohttpRequest
from bot.updates import PerPersonOrder, PersonRate
from bot.upkeep import Upkeep
from bot.webhook_sender import WebhookSender
from web_callback.api import ReadApi
from web_callback.app import TelegramWebhook, make_app

log = logging.getLogger(__name__)

_ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
# Telegram's default; deliveries beyond what the database pool absorbs simply wait a moment.
_WEBHOOK_MAX_CONNECTIONS = 40


class ConnectBot:
    """The whole product in one object: `await start()`, `await stop()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.vault = TokenVault(
            settings.token_encryption_keys.get_secret_value()
            if settings.token_encryption_keys and settings.keeps_tokens
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
            max_concurrent_logins=settings.facebook_max_concurrent_logins,
        )
        token = (
            settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
        )
        # Telegram's flood limits, shared by the handlers' replies and the delivery worker.
        self.pacer = Pacer(settings.telegram_sends_per_second)
        builder = ApplicationBuilder()
        if settings.telegram_webhook_url:
            builder = builder.updater(None)  # no polling: updates arrive at our own route
        self.application: Application = (  # type: ignore[type-arg]
            builder.token(token)
            .base_url(settings.telegram_base_url)
            .base_file_url(settings.telegram_base_file_url)
            # On aiohttp (`bot.telegram_http`): a third of httpx's CPU per request. Long polling
            # holds one connection open; the rest serve sends and edits, several at once (PTB's
            # default pool of one would serialize the delivery worker).
            .request(AiohttpRequest(connections=64, pool_timeout=10))
            .get_updates_request(AiohttpRequest(connections=1, read_timeout=40))
            # Different people's updates at the same time, each person's in order, and no one
            # faster than their share.
            .concurrent_updates(
                PerPersonOrder(
                    rate=PersonRate(
                        burst=settings.person_update_burst,
                        per_second=settings.person_updates_per_second,
                    ),
                    on_flood=self._tell_flooder,
                )
            )
            # Replies within the budget the delivery worker uses too; a 429 waits, then retries.
            .rate_limiter(SharedLimiter(self.pacer))
            .build()
        )
        # Told first: every service that tells someone something gets the same `Notices`, and
        # the delivery worker sleeps on the bell they ring.
        self.doorbell = Doorbell()
        self.notices = Notices(
            db=self.db,
            settings=settings,
            links=Links(self.vault, settings, self.application.bot),
            doorbell=self.doorbell,
        )
        self.menus = RoleMenus(
            bot=self.application.bot,
            db=self.db,
            notices=self.notices,
            admins=settings.admin_telegram_ids,
            commands=COMMANDS,
        )
        # Instagram Login (the second Meta app, issue 13): only when configured.
        self.instagram: InstagramClient | None = None
        if settings.instagram_login_configured:
            assert settings.instagram_app_id and settings.instagram_app_secret
            self.instagram = InstagramClient(
                app_id=settings.instagram_app_id,
                app_secret=settings.instagram_app_secret.get_secret_value(),
                scopes=settings.instagram_scopes,
                authorize_url=settings.instagram_authorize_url,
                token_url=settings.instagram_token_url,
                graph_url=settings.instagram_graph_url,
            )
        self.connect = ConnectService(
            settings=settings,
            db=self.db,
            graph=self.graph,
            vault=self.vault,
            notices=self.notices,
            instagram=self.instagram,
        )
        self.console = Console(
            settings=settings,
            db=self.db,
            graph=self.graph,
            vault=self.vault,
            notices=self.notices,
            menus=self.menus,
        )
        self.delivery = DeliveryWorker(
            db=self.db,
            bot=self.application.bot,
            pacer=self.pacer,
            doorbell=self.doorbell,
            on_unreachable=self.connect.on_unreachable,
        )
        self.privacy = PrivacyService(
            db=self.db,
            app_secret=(
                settings.facebook_app_secret.get_secret_value()
                if settings.facebook_app_secret
                else ""
            ),
            public_url=settings.public_url,
            default_language=settings.default_language,
            graph=self.graph,
            vault=self.vault,
            notices=self.notices,
            on_change=self.notices.refresh_card,
            revocations=self.console.revocations,
        )
        self.metrics = Metrics()
        # Connections kept alive: health checks, renewal requests, breakage notices.
        self.upkeep = Upkeep(
            settings=settings,
            db=self.db,
            graph=self.graph,
            vault=self.vault,
            notices=self.notices,
            metrics=self.metrics,
            instagram=self.instagram,
        )
        # What the brand sees of a connected account: read through the kept Page token (an
        # Instagram Login connection: its own token, on Instagram's host), cached.
        self.profiles = ProfileService(
            settings=settings,
            db=self.db,
            graph=self.graph,
            vault=self.vault,
            instagram=self.instagram,
        )
        # Run by whichever replica holds the delivery worker's leader lease.
        self.jobs = PeriodicJobs(
            lease=self.delivery.lease,
            jobs=fleet_jobs(
                self.db,
                self.privacy,
                self.console.revocations,
                # Without kept tokens (VERIFY_ONLY) there is nothing to check.
                upkeep=self.upkeep if self.vault.enabled else None,
            ),
        )
        self.jobs.add(Job("recover_logins", timedelta(minutes=5), self.connect.recover_stranded))
        if self.vault.enabled:
            # Figures for /export and the read API, also of connections nobody opened.
            self.jobs.add(
                Job(
                    "refresh_figures",
                    timedelta(minutes=15),
                    self.profiles.refresh_stale,
                    wait_first=True,
                )
            )
        self.jobs.add(
            Job(
                "report_stalled",
                timedelta(minutes=10),
                lambda: self.console.report_stalled(hours=settings.stall_hours),
            )
        )
        # The platform's webhooks: signing secrets are sealed with TOKEN_ENCRYPTION_KEYS even
        # with VERIFY_ONLY (which only keeps access tokens out); POSTed by the leader in a task
        # of its own, never in the way of chat messages.
        keys = settings.token_encryption_keys
        self.webhook_vault = TokenVault(keys.get_secret_value() if keys else None)
        self.brand_webhooks = BrandWebhooks(
            db=self.db, vault=self.webhook_vault, allow_loopback=settings.webhook_allow_loopback
        )
        self.webhook_sender = WebhookSender(
            db=self.db,
            lease=self.delivery.lease,
            vault=self.webhook_vault,
            timeout=settings.webhook_timeout_seconds,
            first_retry=settings.webhook_first_retry_seconds,
            allow_loopback=settings.webhook_allow_loopback,
            metrics=self.metrics,
        )
        self.jobs.add(
            Job(
                "prune_webhook_deliveries",
                timedelta(hours=6),
                lambda: self.db.webhooks.prune(before=utcnow() - timedelta(days=14)),
            )
        )
        self._register_handlers()
        self._runner: web.AppRunner | None = None
        self.http_port: int | None = None
        self._metrics_runner: web.AppRunner | None = None
        self.metrics_port: int | None = None
        self.webhook: TelegramWebhook | None = None

    def _register_handlers(self) -> None:
        s, db, connect, console = self.settings, self.db, self.connect, self.console
        common = CommonHandlers(settings=s, db=db, connect=connect, console=console)
        # Order matters: specific commands and the console's own buttons first, then the
        # influencer's (which answers every other button), free text next, unknown commands last.
        self.application.add_handlers(
            PrivacyHandlers(settings=s, db=db, privacy=self.privacy).handlers()
        )
        for feature in (
            ManagerHandlers(
                settings=s, db=db, connect=connect, console=console, upkeep=self.upkeep
            ),
            ProfileHandlers(
                settings=s, db=db, connect=connect, console=console, profiles=self.profiles
            ),
            AdminHandlers(settings=s, db=db, connect=connect, console=console),
            WebhookHandlers(
                settings=s, db=db, connect=connect, console=console, webhooks=self.brand_webhooks
            ),
            InfluencerHandlers(settings=s, db=db, connect=connect, console=console),
        ):
            self.application.add_handlers(feature.handlers())
        self.application.add_handlers(common.handlers())
        self.application.add_handlers(common.fallbacks())
        self.application.add_error_handler(common.on_error)

    async def _tell_flooder(self, update: Update) -> None:
        """Someone sends faster than their share: told once, in their language, that some of it
        is skipped."""
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None:
            return
        chosen, _ = await self.db.people.language_of(user.id)
        language = pick_language(
            chosen=chosen,
            telegram_code=user.language_code,
            default=self.settings.default_language,
        )
        await self.application.bot.send_message(
            chat.id, Texts(language)("error.too_fast"), parse_mode=ParseMode.HTML
        )

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
            webhook=self._make_webhook(),
            privacy=self.privacy,
            login_ttl_seconds=self.settings.login_ttl_minutes * 60,
            secure_cookie=self.settings.public_url.startswith("https://"),
            metrics=self.metrics,
            read_api=ReadApi(db=self.db, vault=self.vault),
        )
        self._runner = web.AppRunner(web_app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or ()
        self.http_port = sockets[0].getsockname()[1] if sockets else self.settings.http_port
        await self._serve_metrics()
        await self.application.start()
        self.db.steps.notes.start()  # notes of sent messages, written behind
        self.delivery.start()
        self.webhook_sender.start()
        self.jobs.start()
        await self._receive_updates()
        log.info(
            "ready: @%s %s, callback server on %s:%s",
            self.application.bot.username,
            "webhook" if self.webhook else "polling",
            self.settings.http_host,
            self.http_port,
        )

    async def stop(self) -> None:
        """Stop taking updates first, then let the HTTP server finish its requests."""
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.webhook is not None:
            # Nothing is deleted at Telegram: another replica may still be serving the webhook.
            await self.webhook.close()
        if self.application.running:
            await self.application.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
            self._metrics_runner = None
        # Callbacks have finished; deliver what they committed (the rest waits in the outbox).
        await self.jobs.stop()
        await self.connect.aclose()
        await self.db.steps.notes.stop()  # what the handlers noted last
        await self.webhook_sender.stop()
        await self.delivery.stop()
        await self.application.shutdown()
        await self.graph.aclose()
        if self.instagram is not None:
            await self.instagram.aclose()
        await self.db.dispose()

    async def _serve_metrics(self) -> None:
        """Prometheus' /metrics on its own address, when METRICS_PORT is set."""
        if self.settings.metrics_port is None:
            return
        self._metrics_runner = web.AppRunner(
            metrics_app(self.metrics, self.db.gauges, self.db.health),
            handle_signals=False,
            access_log=None,
        )
        await self._metrics_runner.setup()
        site = web.TCPSite(
            self._metrics_runner, self.settings.metrics_host, self.settings.metrics_port
        )
        await site.start()
        self.metrics_port = self._metrics_runner.addresses[0][1]

    def _make_webhook(self) -> TelegramWebhook | None:
        secret = self.settings.telegram_webhook_secret
        if not self.settings.telegram_webhook_url or secret is None:
            return None
        self.webhook = TelegramWebhook(
            secret=secret.get_secret_value(),
            bot=self.application.bot,
            queue=self.application.update_queue,
            db=self.db,
        )
        return self.webhook

    async def _receive_updates(self) -> None:
        """Webhook mode registers the route with Telegram (every replica does, with the same
        URL); otherwise this process long-polls."""
        if self.webhook is not None:
            secret = self.settings.telegram_webhook_secret
            assert secret is not None
            try:
                await self.application.bot.set_webhook(
                    self.settings.telegram_webhook_url,
                    secret_token=secret.get_secret_value(),
                    allowed_updates=_ALLOWED_UPDATES,
                    max_connections=_WEBHOOK_MAX_CONNECTIONS,
                )
            except BadRequest as exc:
                raise ValueError(f"Telegram refused TELEGRAM_WEBHOOK_URL: {exc.message}") from None
            return
        assert self.application.updater is not None
        await self.application.updater.start_polling(
            allowed_updates=_ALLOWED_UPDATES, drop_pending_updates=False
        )

    async def _set_commands(self) -> None:
        await set_default_menus(self.application.bot, COMMANDS)
        admins = set(self.settings.admin_telegram_ids)
        brands = self.db.brands
        managers = {
            m.telegram_id for b in await brands.brands() for m in await brands.managers(b.id or 0)
        }
        for chat_id in sorted(admins | managers):
            await self.menus.refresh(chat_id)


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
