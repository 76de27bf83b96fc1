"""The playground's composition root: the Telegram and Facebook stand-ins, the real `ConnectBot`
pointed at them through its ordinary settings, and the playground's web app.

Start-up order: stand-ins → playground web app (its address is the sandbox dialog's) → the bot.
Shutdown runs it backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
from aiohttp import web
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlmodel import col, update

from bot.app import ConnectBot
from bot.config import Settings
from bot.models import Connection, ConnectionStatus, utcnow
from playground.chats import Chats
from playground.config import PlaygroundSettings, refuse_real_credentials
from playground.facebook_side import FacebookSide, RoundCounts, signed_deauthorize
from playground.people import Cast
from playground.platform_side import RECEIVER_PATH, Attachment, Platform
from playground.web import DIALOG_PREFIX, INSTAGRAM_PREFIX, make_app
from sandbox.facebook import GraphStandin
from sandbox.instagram import InstagramStandin
from sandbox.telegram import TelegramStandin
from web_callback.app import DEAUTHORIZE_PATH

log = logging.getLogger(__name__)

BOT_USERNAME = "connect_playground_bot"
BOT_NAME = "Connect Bot"
# Rounds of health checks come by themselves this often (unless HEALTH_CHECK_INTERVAL_SECONDS is
# set), so a renewal or a breakage played on the "Facebook's side" panel shows within a minute
# even without "Check now".
HEALTH_CHECK_INTERVAL_SECONDS = 60.0
# The platform pane's "Answer 500" shows the retries within seconds, not the half minute a
# real deployment waits first (unless WEBHOOK_FIRST_RETRY_SECONDS is set).
WEBHOOK_FIRST_RETRY_SECONDS = 5.0


class Playground:
    """Everything on one machine: `await start()`, open `url`, `await stop()`."""

    def __init__(
        self,
        settings: Settings,
        options: PlaygroundSettings,
        *,
        database_url: str | None = None,
    ) -> None:
        """``database_url``: by default a fresh SQLite database that is removed on stop; the
        stand-ins keep their chats in memory, so a kept database would point at chats that no
        longer exist."""
        refuse_real_credentials(settings)
        self.options = options
        self._base_settings = settings
        self._database_url = database_url
        self._scratch: Path | None = None
        self.telegram = TelegramStandin(bot_username=BOT_USERNAME, bot_first_name=BOT_NAME)
        self.graph = GraphStandin(app_name=BOT_NAME)
        # The second Meta app (Instagram Login): its window is the sandbox consent page, where
        # the person picks the account, its type and the permissions granted.
        self.instagram = InstagramStandin(app_name=BOT_NAME)
        self.instagram.consent_page = True
        self.cast = Cast()
        self.cast.add_influencer()
        self.chats = Chats(self.telegram, self.cast)
        self.facebook = FacebookSide(
            graph=self.graph,
            connection_of=self.connection_of,
            deauthorize=self._deauthorize,
            run_round=self._run_round,
            has_rounds=self._has_rounds,
            instagram=self.instagram,
        )
        self.platform = Platform(
            on_change=lambda: self.chats.refresh(force=True),
            attach=self._attach_platform,
            current_secret=self._platform_secret,
            new_key=self._platform_key,
        )
        self._closing = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._bot: ConnectBot | None = None
        self.url = ""

    @property
    def bot(self) -> ConnectBot:
        assert self._bot is not None, "the playground is not started"
        return self._bot

    async def start(self) -> None:
        await self.telegram.start()
        await self.graph.start()
        await self.instagram.start()
        await self._start_web()
        self._bot = ConnectBot(self._bot_settings())
        await self._bot.start()
        await self.platform.ready()  # a kept database may have Maria's brand already
        self.facebook.check_interval_seconds = self._bot.settings.health_check_interval_seconds
        self._watcher = asyncio.create_task(self.chats.watch(self._closing))

    async def stop(self) -> None:
        self._closing.set()  # ends the page's live streams and the watcher
        if self._watcher is not None:
            await self._watcher
            self._watcher = None
        await self.platform.close()
        if self._bot is not None:
            await self._bot.stop()
            self._bot = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.telegram.stop()
        await self.graph.stop()
        await self.instagram.stop()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _bot_settings(self) -> Settings:
        """The user's settings with everything that reaches Telegram and Facebook pointed at the
        stand-ins, the playground's manager made an admin, and a throw-away database."""
        database_url = self._database_url
        if database_url is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="connect-bot-playground-"))
            database_url = f"sqlite+aiosqlite:///{self._scratch / 'playground.sqlite3'}"
        base = self._base_settings
        http_port, public_url = _bot_address(base)
        return base.model_copy(
            update={
                "http_port": http_port,
                "public_url": public_url,
                "telegram_bot_token": SecretStr(self.telegram.token),
                "telegram_base_url": self.telegram.base_url,
                # The stand-in is polled: a webhook would have to reach it over HTTPS.
                "telegram_webhook_url": "",
                "facebook_app_id": self.graph.app_id,
                "facebook_app_secret": SecretStr(self.graph.app_secret),
                "facebook_graph_url": self.graph.base_url,
                "facebook_dialog_url": f"{self.url.rstrip('/')}{DIALOG_PREFIX}",
                "instagram_app_id": self.instagram.app_id,
                "instagram_app_secret": SecretStr(self.instagram.app_secret),
                "instagram_authorize_url": f"{self.url.rstrip('/')}{INSTAGRAM_PREFIX}",
                "instagram_token_url": self.instagram.base_url,
                "instagram_graph_url": self.instagram.base_url,
                "database_url": database_url,
                "admin_telegram_ids": base.admin_telegram_ids | {self.cast.manager.id},
                # The platform's webhooks may reach a receiver on this machine (plain http).
                "webhook_allow_loopback": True,
                # Tokens are kept, as in a real deployment, with a key that dies with the run.
                "token_encryption_keys": base.token_encryption_keys
                or SecretStr(Fernet.generate_key().decode()),
                "health_check_interval_seconds": (
                    base.health_check_interval_seconds
                    if "health_check_interval_seconds" in base.model_fields_set
                    else HEALTH_CHECK_INTERVAL_SECONDS
                ),
                "webhook_first_retry_seconds": (
                    base.webhook_first_retry_seconds
                    if "webhook_first_retry_seconds" in base.model_fields_set
                    else WEBHOOK_FIRST_RETRY_SECONDS
                ),
            }
        )

    async def _start_web(self) -> None:
        app = make_app(
            cast=self.cast,
            chats=self.chats,
            telegram=self.telegram,
            graph=self.graph,
            facebook=self.facebook,
            platform=self.platform,
            invited_handle=self._invited_handle,
            closing=self._closing,
            instagram=self.instagram,
        )
        # No access log: the page's live stream and its calls would drown everything else.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.options.host, self.options.port)
        await site.start()
        port = self._runner.addresses[0][1]
        host = self.options.host if self.options.host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.url = f"http://{host}:{port}/"

    async def _attach_platform(self) -> None:
        """The "platform" pane's brand, once there is one: Maria's (her first /invite makes it;
        making it earlier would leave her without the manager's menu, which is set when that
        happens), its webhook pointed at the pane's receiver and a read API key, both through the
        bot's own services, as `/webhook` and `/apikey` do. The pane keeps the secret and the
        key. Called (`Platform.ready`) before the page's messages and presses reach the bot, so
        the influencer's first step after the invitation is heard already."""
        if self._bot is None:
            return  # the page asked before the bot started
        bot, manager = self._bot, self.cast.manager
        found = await bot.db.brands.manager(manager.id)
        brand = await bot.console.brand(found.brand_id) if found is not None else None
        if brand is None or brand.id is None:
            return  # no brand yet: the pane waits for Maria's first /invite
        url = f"{self.url.rstrip('/')}{RECEIVER_PATH}"
        webhook = await bot.brand_webhooks.set_url(brand, url)
        if webhook.secret is None:
            self.platform.unavailable(f"the bot refused the webhook URL ({webhook.problem})")
            return
        key = await bot.console.create_api_key(brand, created_by=manager.id, label="playground")
        self.platform.attach_to(
            Attachment(
                brand_id=brand.id,
                brand_name=brand.name,
                webhook_url=url,
                api_url=bot.settings.public_url.rstrip("/"),
                key_prefix=key.row.prefix,
                secret=webhook.secret,
                api_key=key.key,
            )
        )

    async def _platform_secret(self, attachment: Attachment) -> str | None:
        """The brand's signing secret as the bot signs with it now (an admin may have set a new
        one with `/webhook`), opened with the bot's own vault, which sealed it."""
        brand = await self.bot.console.brand(attachment.brand_id)
        if brand is None or not brand.webhook_secret_sealed:
            return None
        return self.bot.vault.open(brand.webhook_secret_sealed)

    async def _platform_key(self, attachment: Attachment) -> tuple[str, str]:
        """A new API key for the pane, made as at the start (its old one was refused)."""
        brand = await self.bot.console.brand(attachment.brand_id)
        if brand is None:
            raise LookupError("the brand is gone")
        key = await self.bot.console.create_api_key(
            brand, created_by=self.cast.manager.id, label="playground"
        )
        return key.row.prefix, key.key

    async def _invited_handle(self, telegram_id: int) -> str | None:
        invite = await self.bot.db.invitations.active_invitation_of(telegram_id)
        return invite.handle if invite is not None else None

    async def connection_of(self, telegram_id: int) -> Connection | None:
        """The connection of the invitation this person worked on last, if it has one."""
        invite = await self.bot.db.invitations.active_invitation_of(telegram_id)
        if invite is None or invite.id is None:
            return None
        return await self.bot.db.console.connection_for(invite.id)

    async def _deauthorize(self, facebook_user_id: str) -> bool:
        """What Facebook does when someone removes the app: a signed POST to the app's
        deauthorize callback URL, here the bot's own route."""
        settings = self.bot.settings
        secret = settings.facebook_app_secret
        signed = signed_deauthorize(facebook_user_id, secret.get_secret_value() if secret else "")
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.post(
                    f"{settings.public_url.rstrip('/')}{DEAUTHORIZE_PATH}",
                    data={"signed_request": signed},
                )
        except httpx.HTTPError:
            return False
        return answer.is_success

    def _has_rounds(self) -> bool:
        # Checks need the kept tokens: none with VERIFY_ONLY.
        return self._bot is not None and self._bot.vault.enabled

    async def _run_round(self) -> RoundCounts:
        """A health round (`bot.upkeep`) that checks every active connection now, as if their
        next checks had all come due (a round itself takes only what is due). The playground
        moves the due times itself, as a test moves time: nothing in the bot does this."""
        async with self.bot.db.transaction() as session:
            await session.exec(
                update(Connection)
                .where(col(Connection.status) == ConnectionStatus.ACTIVE)
                .values(next_check_at=utcnow())
            )
        return await self.bot.upkeep.run_round()


def _bot_address(settings: Settings) -> tuple[int, str]:
    """The bot's HTTP_PORT and PUBLIC_URL in the playground. Without an explicit PUBLIC_URL (env
    or .env), it is where the bot listens: setting only HTTP_PORT moves the login buttons, the
    platform pane's API calls and /apikey's example with it. HTTP_PORT=0 is a free port, picked
    here, since the bot's services take their address before it binds."""
    port = settings.http_port
    if port == 0:
        with socket.socket(socket.AF_INET6 if ":" in settings.http_host else socket.AF_INET) as s:
            s.bind((settings.http_host, 0))
            port = int(s.getsockname()[1])
    if "public_url" in settings.model_fields_set:
        return port, settings.public_url
    host = settings.http_host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return port, f"http://{host}:{port}"


async def run_playground(
    settings: Settings, options: PlaygroundSettings, *, announce: Callable[[str], None]
) -> None:
    """Run until SIGINT/SIGTERM; ``announce`` gets the one line with the address to open."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    playground = Playground(settings, options)
    try:
        await playground.start()
        announce(
            f"Playground: {playground.url} (no TELEGRAM_BOT_TOKEN set, so Telegram and Facebook "
            "are local stand-ins; Ctrl-C stops)"
        )
        await stop.wait()
        log.info("shutting down")
    finally:
        await playground.stop()
