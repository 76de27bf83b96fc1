"""The end-to-end test world: the real bot (PTB Application + aiohttp server + database) pointed at
the Telegram and Facebook stand-ins, plus the people who use it."""

from __future__ import annotations

import asyncio
import secrets
import socket
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet
from pydantic import SecretStr
from telegram import Update
from telegram.ext import TypeHandler

from bot.app import ConnectBot
from bot.config import Settings
from bot.store import Database
from sandbox.facebook import Consent, FbPage, FbUser, GraphStandin, IgAccount
from sandbox.instagram import IgConsent, IgPerson, InstagramStandin
from sandbox.telegram import SentMessage, TelegramStandin, TgUser
from web_callback.app import WEBHOOK_PATH

MANAGER = TgUser(id=5001, first_name="Maria", username="maria_brand", language_code="en")
ANNA = TgUser(id=7001, first_name="Anna", username="anna", language_code="en")
BEN = TgUser(id=7002, first_name="Ben", username="ben", language_code="de")


def anna_on_facebook(**page: object) -> FbUser:
    """Anna with her published Page linked to @anna.bakes: everything right."""
    fields: dict[str, object] = {
        "id": "p-100",
        "name": "Anna Bakes",
        "instagram": IgAccount(id="ig-100", username="anna.bakes", followers_count=12345),
    }
    fields.update(page)
    return FbUser(
        id="fb-anna",
        name="Anna",
        pages=[
            FbPage(id="p-050", name="Anna's Old Shop"),
            FbPage(**fields),  # type: ignore[arg-type]
            FbPage(id="p-200", name="Neighbourhood Club"),
        ],
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    telegram: TelegramStandin
    graph: GraphStandin
    settings: Settings
    bot: ConnectBot
    browser: httpx.AsyncClient
    handled: HandledCounter
    # Instagram Login's stand-in (authorize window, token endpoint, Graph host): always running;
    # the bot is pointed at it (INSTAGRAM_APP_ID etc.) only with ``make_world(instagram=True)``.
    instagram: InstagramStandin = field(default_factory=InstagramStandin)

    @property
    def db(self) -> Database:
        return self.bot.db

    async def restart(self) -> None:
        """Stop the whole bot process state and start a fresh one on the same database."""
        await self.bot.stop()
        self.bot = await _start_bot(self.settings, self.handled)

    async def settle(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """Until the bot has fetched and fully handled every update people caused so far."""
        async with asyncio.timeout(timeout):
            while True:
                await self.telegram.wait_idle(timeout)
                if self.handled.count >= self.telegram.updates_created:
                    return
                await asyncio.sleep(0.01)

    # --- the manager -----------------------------------------------------------------------

    async def invite(self, handle: str, manager: TgUser = MANAGER) -> str:
        """Returns the deep-link token the manager received."""
        before = len(self.telegram.messages(manager.id))
        self.telegram.send_text(manager, f"/invite {handle}")
        await self.settle()
        new = self.telegram.messages(manager.id)[before:]
        reply = next(m for m in reversed(new) if "t.me/" in m.text)
        link = next(w for w in reply.text.split() if "t.me/" in w)
        query = parse_qs(urlsplit(link).query)
        return query["start"][0]

    async def revoke(self, ref: str, manager: TgUser = MANAGER) -> list[SentMessage]:
        """/revoke <ref>, confirmed where the bot asks first (a connected invitation); returns
        everything the bot answered in the manager's chat."""
        before = len(self.telegram.messages(manager.id))
        self.telegram.send_text(manager, f"/revoke {ref}")
        await self.settle()
        asked = self.telegram.messages(manager.id)[before:]
        if asked and any("⛔" in b["text"] for row in asked[-1].buttons for b in row):
            self.telegram.press(manager, asked[-1], "⛔")
            await self.settle()
        return self.telegram.messages(manager.id)[before:]

    # --- the influencer ----------------------------------------------------------------------

    async def open_link(self, user: TgUser, token: str) -> SentMessage:
        self.telegram.send_text(user, f"/start {token}")
        await self.settle()
        return self.telegram.last_message(user.id)

    async def say(self, user: TgUser, text: str) -> list[SentMessage]:
        """Send a message and return what the bot answered in that chat."""
        before = len(self.telegram.messages(user.id))
        self.telegram.send_text(user, text)
        await self.settle()
        return self.telegram.messages(user.id)[before:]

    async def rows(self, sql: str) -> list[tuple[object, ...]]:
        """What the bot's database holds (read directly, as an operator would)."""
        async with self.db.engine.connect() as conn:
            return [tuple(r) for r in (await conn.execute(sa.text(sql))).all()]

    async def answer(self, user: TgUser, label: str) -> SentMessage:
        """Press a button on the newest message that has it."""
        message = next(
            m
            for m in reversed(self.telegram.messages(user.id))
            if any(label.lower() in b["text"].lower() for row in m.buttons for b in row)
        )
        self.telegram.press(user, message, label)
        await self.settle()
        return self.telegram.last_message(user.id)

    async def through_checks(self, user: TgUser, token: str) -> SentMessage:
        """Open the link and answer both checks with yes; returns the login message."""
        await self.open_link(user, token)
        await self.answer(user, "Yes" if user.language_code != "de" else "Ja")
        return await self.answer(user, "Yes" if user.language_code != "de" else "Ja")

    def login_url(self, user: TgUser) -> str:
        """The newest login button's link (the bot's /oauth/start?state=…)."""
        for message in reversed(self.telegram.messages(user.id)):
            for row in message.buttons:
                for button in row:
                    if "url" in button and is_login_url(button["url"]):
                        return str(button["url"])
        raise AssertionError("no login button in the chat")

    async def dialog_url(self, user: TgUser) -> str:
        """Open the newest login button in the browser and return where /oauth/start sends it
        (Facebook's dialog), without going there."""
        async with httpx.AsyncClient(timeout=30, cookies=self.browser.cookies) as tab:
            start = await tab.get(self.login_url(user))
            assert start.status_code == 302, start.text
            for cookie in tab.cookies.jar:
                self.browser.cookies.jar.set_cookie(cookie)
            return str(start.headers["location"])

    async def facebook_login(
        self, user: TgUser, person: FbUser, consent: Consent | None = None
    ) -> httpx.Response:
        """The influencer taps the login button: the dialog redirects to our callback, and the
        browser shows our page."""
        self.graph.set_person(person, consent)
        dialog = await self.browser.get(self.login_url(user))
        assert dialog.status_code == 302, dialog.text
        page = await self.browser.get(dialog.headers["location"])
        await self.settle()
        return page

    async def connect_with_instagram(self, user: TgUser, person: IgPerson) -> int:
        """@<person> invited and connected the real way: "No" to the Page question, "Yes" to
        the professional account, Instagram's window. Returns the invitation's id."""
        german = user.language_code == "de"
        token = await self.invite(f"@{person.username}")
        await self.open_link(user, token)
        await self.answer(user, "Nein" if german else "No")
        await self.answer(user, "Ja" if german else "Yes")
        page = await self.instagram_login(user, person)
        assert page.status_code == 200 and f"@{person.username}" in page.text, page.text
        await self.telegram.wait_for(user.id, "Instagram-Login" if german else "Instagram Login")
        [(invitation_id,)] = await self.rows(
            f"SELECT id FROM invitation WHERE handle = '{person.username}'"
        )
        return int(str(invitation_id))

    async def instagram_login(
        self, user: TgUser, person: IgPerson, consent: IgConsent | None = None
    ) -> httpx.Response:
        """The influencer taps the Instagram login button: Instagram's window redirects to our
        /oauth/instagram callback, and the browser shows our page."""
        self.instagram.set_person(person, consent)
        window = await self.browser.get(self.login_url(user))
        assert window.status_code == 302, window.text
        page = await self.browser.get(window.headers["location"])
        await self.settle()
        return page


async def make_world(
    database_url: str, *, webhook: bool = False, instagram: bool = False, **overrides: object
) -> World:
    """With ``webhook=True`` the bot runs in webhook mode: the stand-in POSTs updates to the bot's
    /telegram/webhook route with a secret, instead of the bot long-polling. With
    ``instagram=True`` the second Meta app (Instagram Login) is configured, on the stand-in."""
    telegram = TelegramStandin()
    graph = GraphStandin()
    instagram_standin = InstagramStandin()
    await telegram.start()
    await graph.start()
    await instagram_standin.start()
    port = _free_port()
    values: dict[str, object] = dict(
        telegram_bot_token=SecretStr(telegram.token),
        telegram_base_url=telegram.base_url,
        facebook_app_id=graph.app_id,
        facebook_app_secret=SecretStr(graph.app_secret),
        facebook_graph_url=graph.base_url,
        facebook_dialog_url=graph.base_url,
        public_url=f"http://127.0.0.1:{port}",
        http_host="127.0.0.1",
        http_port=port,
        database_url=database_url,
        admin_telegram_ids=frozenset({MANAGER.id}),
        platform_name="Brandly",
        default_language="en",
        token_encryption_keys=SecretStr(Fernet.generate_key().decode()),
    )
    if instagram:
        values.update(
            instagram_app_id=instagram_standin.app_id,
            instagram_app_secret=SecretStr(instagram_standin.app_secret),
            instagram_authorize_url=instagram_standin.base_url,
            instagram_token_url=instagram_standin.base_url,
            instagram_graph_url=instagram_standin.base_url,
        )
    if webhook:
        values["telegram_webhook_url"] = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        values["telegram_webhook_secret"] = SecretStr(secrets.token_urlsafe(32))
    values.update(overrides)
    settings = Settings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]
    handled = HandledCounter()
    bot = await _start_bot(settings, handled)
    browser = httpx.AsyncClient(timeout=30, transport=BrowserTransport())
    return World(telegram, graph, settings, bot, browser, handled, instagram_standin)


def is_login_url(url: str) -> bool:
    return "/oauth/start?" in url or "dialog/oauth" in url


class BrowserTransport(httpx.AsyncBaseTransport):
    """What a browser does by itself after tapping the login button: the bot's /oauth/start
    sets the login cookie and redirects to Facebook's dialog, which the browser opens at once.
    A GET of the button's link therefore answers with the dialog's own answer (its redirect
    back to the callback), and the client keeps the cookie as a browser would."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.url.path != "/oauth/start" or response.status_code != 302:
            return response
        await response.aread()
        cookies = [(k, v) for k, v in response.headers.raw if k.lower() == b"set-cookie"]
        follow = httpx.Request("GET", response.headers["location"])
        dialog = await self._inner.handle_async_request(follow)
        return httpx.Response(
            dialog.status_code,
            headers=list(dialog.headers.raw) + cookies,
            stream=dialog.stream,
            extensions=dialog.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class HandledCounter:
    """Counts updates the bot has completely handled (test instrumentation, not a mock: a
    handler in a group after all of the product's groups)."""

    count: int = 0

    async def __call__(self, update: object, context: object) -> None:
        self.count += 1


async def _start_bot(settings: Settings, handled: HandledCounter) -> ConnectBot:
    bot = ConnectBot(settings)
    bot.application.add_handler(TypeHandler(Update, handled), group=1_000)
    await bot.start()
    return bot


async def close_world(world: World) -> None:
    await world.browser.aclose()
    await world.bot.stop()
    await world.telegram.stop()
    await world.graph.stop()
    await world.instagram.stop()
