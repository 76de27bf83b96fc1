"""The playground without a browser: its composition, the page's HTTP API (invite, start, press)
and the sandbox login dialog, submitted the way a browser submits the form, producing every
verdict the real flow knows. The same page in a real browser: tests/test_playground_browser.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from bot.config import ConfigError, Settings
from bot.verdict import Outcome
from playground.composition import Playground
from playground.config import PlaygroundSettings, wants_playground
from playground.sandbox_login import PageSetup
from playground.sandbox_page import consent_page
from sandbox.telegram import TgUser

ROOT = Path(__file__).resolve().parent.parent
JsonDict = dict[str, Any]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(**values: object) -> Settings:
    port = _free_port()
    fields: dict[str, object] = {"http_port": port, "public_url": f"http://127.0.0.1:{port}"}
    fields.update(values)
    return Settings(_env_file=None, **fields)  # type: ignore[arg-type, call-arg]


async def start_playground(**values: object) -> Playground:
    playground = Playground(
        _settings(**values),
        PlaygroundSettings(_env_file=None, port=0),  # type: ignore[call-arg]
    )
    await playground.start()
    return playground


@pytest.fixture
async def playground() -> AsyncIterator[Playground]:
    started = await start_playground()
    try:
        yield started
    finally:
        await started.stop()


# --- the page's API, as the page's script uses it ------------------------------------------------


@dataclass
class PageApi:
    playground: Playground
    http: httpx.AsyncClient

    @property
    def manager(self) -> TgUser:
        return self.playground.cast.manager

    async def state(self) -> JsonDict:
        response = await self.http.get("api/state")
        assert response.status_code == 200
        return dict(response.json())

    async def send(self, chat_id: int, text: str) -> httpx.Response:
        return await self.http.post(f"api/chats/{chat_id}/messages", json={"text": text})

    async def press(
        self, chat_id: int, label: str, message_id: int | None = None
    ) -> httpx.Response:
        """Press the button labelled ``label`` on the newest message of the chat that has it
        (or on the message ``message_id``)."""
        chat = (await self.state())["chats"][str(chat_id)]
        for item in reversed(chat):
            if message_id is not None and item.get("message_id") != message_id:
                continue
            for row in item.get("buttons", []):
                for button in row:
                    if label.casefold() in button["text"].casefold() and "data" in button:
                        return await self.http.post(
                            f"api/chats/{chat_id}/presses",
                            json={"message_id": item["message_id"], "data": button["data"]},
                        )
        raise AssertionError(f"no button {label!r} in chat {chat_id}: {chat}")

    async def invite(self, handle: str) -> str:
        """The manager invites; returns the deep link the page shows."""
        assert (await self.send(self.manager.id, f"/invite @{handle}")).status_code == 200
        await self.playground.telegram.wait_for(self.manager.id, f"Invitation for @{handle}")
        chat = (await self.state())["chats"][str(self.manager.id)]
        links = [
            link
            for item in chat
            if item["from"] == "bot"
            for link in re.findall(r"https://t\.me/[^\s<\"]+", item["html"])
        ]
        return str(links[-1])

    async def new_influencer(self, language: str = "en") -> TgUser:
        response = await self.http.post("api/influencers", json={"language": language})
        assert response.status_code == 201
        person = self.playground.cast.person(response.json()["id"])
        assert person is not None
        return person

    async def choose_facebook(self, influencer: TgUser) -> None:
        """The playground offers both ways in: the first question, answered "Yes, it is" (the
        account is linked to a Page), leads to the Facebook steps."""
        await self.playground.telegram.wait_for(influencer.id, "Facebook Page you manage?")
        assert (await self.press(influencer.id, "Yes, it is")).status_code == 200

    async def through_checks(self, influencer: TgUser, link: str) -> str:
        """What clicking the deep link does on the page (``/start <payload>`` in the influencer's
        chat), then Yes to both checks; returns the login button's URL."""
        payload = link.split("?start=", 1)[1]
        telegram = self.playground.telegram
        assert (await self.send(influencer.id, f"/start {payload}")).status_code == 200
        await self.choose_facebook(influencer)
        await telegram.wait_for(influencer.id, "Step 1 of 3")
        assert (await self.press(influencer.id, "Yes")).status_code == 200
        await telegram.wait_for(influencer.id, "Step 2 of 3")
        assert (await self.press(influencer.id, "Yes")).status_code == 200
        await telegram.wait_for(influencer.id, "Step 3 of 3")
        chat = (await self.state())["chats"][str(influencer.id)]
        return await self.open_login(
            next(
                button["url"]
                for item in reversed(chat)
                for row in item.get("buttons", [])
                for button in row
                if "/oauth/start?" in button.get("url", "")
            )
        )

    async def open_login(self, button_url: str) -> str:
        """What the popup does with the login button: the bot's /oauth/start sets its login
        cookie (kept by this client, as a browser keeps it) and sends it on to the sandbox
        dialog, whose URL this returns."""
        start = await self.http.get(button_url)
        assert start.status_code == 302, start.text
        return str(start.headers["location"])


@pytest.fixture
async def page(playground: Playground) -> AsyncIterator[PageApi]:
    async with httpx.AsyncClient(base_url=playground.url, timeout=30) as http:
        yield PageApi(playground, http)


class _Form(HTMLParser):
    """The fields a browser submits for the first form of a page, as it is when loaded."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("name"):
            if a.get("type") in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((a["name"], a.get("value") or "on"))
            else:
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select, self._options = a["name"], []
        elif tag == "option" and self._select is not None:
            self._options.append((a["value"], "selected" in a))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select is not None:
            chosen = [value for value, selected in self._options if selected]
            self.fields.append((self._select, (chosen or [self._options[0][0]])[0]))
            self._select = None


def form_fields(html: str) -> list[tuple[str, str]]:
    parser = _Form()
    parser.feed(html)
    return parser.fields


def change(
    fields: Iterable[tuple[str, str]], *, drop: Iterable[str] = (), **values: str
) -> list[tuple[str, str]]:
    """``drop`` takes "name" (every value) or "name=value"; keyword names use _ for -."""
    dropped = set(drop)
    settings = {name.replace("_", "-"): value for name, value in values.items()}
    kept = [
        (k, v)
        for k, v in fields
        if k not in dropped and f"{k}={v}" not in dropped and k not in settings
    ]
    return kept + list(settings.items())


def form_data(fields: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    return data


async def log_in(page: PageApi, dialog_url: str, fields: list[tuple[str, str]]) -> httpx.Response:
    """Submit the sandbox dialog and follow its redirect to the bot's callback, as a browser."""
    return await page.http.post(dialog_url, data=form_data(fields), follow_redirects=True)


# --- composition --------------------------------------------------------------------------------


async def test_the_real_bot_is_pointed_at_the_standins(playground: Playground) -> None:
    settings = playground.bot.settings
    assert settings.telegram_base_url == playground.telegram.base_url
    assert settings.facebook_graph_url == playground.graph.base_url
    assert settings.facebook_dialog_url == f"{playground.url}sandbox/facebook"
    assert playground.cast.manager.id in settings.admin_telegram_ids
    async with httpx.AsyncClient(timeout=30) as http:
        own = await http.get(playground.url)
        assert own.status_code == 200 and "Connect Bot" in own.text
        assert own.headers["X-Content-Type-Options"] == "nosniff"
        # The bot's own server (the one a deployment runs) has none of the playground's routes.
        for path in ("/", "/api/state", "/sandbox/facebook/v25.0/dialog/oauth"):
            response = await http.get(f"{settings.public_url}{path}")
            assert response.status_code == 404, path
        assert (await http.get(f"{settings.public_url}/healthz")).status_code == 200


async def test_a_throwaway_database_by_default() -> None:
    started = await start_playground()
    url = started.bot.settings.database_url
    folder = Path(url.removeprefix("sqlite+aiosqlite:///")).parent
    assert folder.is_dir()
    await started.stop()
    assert not folder.exists()


@pytest.mark.parametrize(
    "credential",
    [
        {"telegram_bot_token": SecretStr("1:abc")},
        {"facebook_app_id": "1234"},
        {"facebook_app_secret": SecretStr("shh")},
    ],
)
def test_never_with_real_credentials(credential: dict[str, object]) -> None:
    settings = _settings(**credential)
    assert not wants_playground(settings)
    with pytest.raises(ConfigError, match="real credentials"):
        Playground(settings, PlaygroundSettings(_env_file=None))  # type: ignore[call-arg]
    assert wants_playground(_settings())


# --- the page's API -----------------------------------------------------------------------------


async def test_invite_start_and_press_through_the_page(page: PageApi) -> None:
    link = await page.invite("anna.bakes")
    assert link.startswith("https://t.me/connect_playground_bot?start=")
    anna = page.playground.cast.influencers[0]
    await page.through_checks(anna, link)

    state = await page.state()
    manager_chat = state["chats"][str(page.manager.id)]
    assert [item["from"] for item in manager_chat] == ["person", "bot"]
    assert manager_chat[0]["text"] == "/invite @anna.bakes"
    invitation = manager_chat[1]["html"]  # Telegram HTML, as the bot sent it
    assert "<b>" in invitation and "@anna.bakes" in invitation
    chat = state["chats"][str(anna.id)]
    # What Anna typed sits before the bot's answers; the answered question lost its buttons.
    assert chat[0]["from"] == "person" and chat[0]["text"].startswith("/start ")
    step1 = next(item for item in chat if "Step 1 of 3" in item.get("html", ""))
    assert step1["buttons"] == [] and step1["edited"]
    login = chat[-1]
    assert "Step 3 of 3" in login["html"]
    assert any("/oauth/start?" in b.get("url", "") for row in login["buttons"] for b in row)
    assert state["bot"]["username"] == "connect_playground_bot"
    assert [p["name"] for p in state["influencers"]] == ["Anna"]


async def test_the_page_refuses_what_a_client_cannot_do(page: PageApi) -> None:
    anna = page.playground.cast.influencers[0]
    assert (await page.send(999, "hello")).status_code == 400
    assert (await page.send(anna.id, "   ")).status_code == 400
    nothing = await page.http.post(
        f"api/chats/{anna.id}/presses", json={"message_id": 1, "data": "c1:y:1:page_public"}
    )
    assert nothing.status_code == 400 and "not in the chat" in nothing.json()["error"]
    assert (await page.http.post(f"api/chats/{anna.id}/messages", content=b"{")).status_code == 400
    bad_language = await page.http.post("api/influencers", json={"language": "fr"})
    assert bad_language.status_code == 400


async def test_a_second_influencer_has_a_chat_of_their_own(page: PageApi) -> None:
    ben = await page.new_influencer("de")
    assert (ben.first_name, ben.language_code) == ("Ben", "de")
    link = await page.invite("ben.cooks")
    await page.through_checks(page.playground.cast.influencers[0], link)
    # Ben opens Anna's link: the bot refuses, in German.
    await page.send(ben.id, f"/start {link.split('?start=', 1)[1]}")
    await page.playground.telegram.wait_for(ben.id, "bereits von einem anderen")
    state = await page.state()
    assert [p["id"] for p in state["influencers"]] == [2001, 2002]
    assert str(ben.id) in state["chats"]


async def test_an_old_button_is_answered_with_a_toast(page: PageApi) -> None:
    """A second tap on an answered step (a double tap, before the bot took the buttons off)
    only gets a toast: the next step comes once. Old copies of a step lose their buttons, so a
    tap on a stale button is only possible while they are still there."""
    anna = page.playground.cast.influencers[0]
    telegram = page.playground.telegram
    link = await page.invite("anna.bakes")
    await page.send(anna.id, f"/start {link.split('?start=', 1)[1]}")
    await page.choose_facebook(anna)
    first = await telegram.wait_for(anna.id, "Step 1 of 3")
    await page.send(anna.id, "what now?")  # one line pointing at the buttons
    await telegram.wait_for(anna.id, "use the buttons")
    await telegram.wait_idle()
    assert (await page.press(anna.id, "Yes", message_id=first.message_id)).status_code == 200
    assert (await page.press(anna.id, "Yes", message_id=first.message_id)).status_code == 200
    await telegram.wait_for(anna.id, "Step 2 of 3")
    await telegram.wait_idle()
    page.playground.chats.refresh()
    state = await page.state()
    chat = state["chats"][str(anna.id)]
    assert sum("Step 2 of 3" in item.get("html", "") for item in chat) == 1
    toasts = state["toasts"]
    assert [(t["chat_id"], t["alert"]) for t in toasts] == [(anna.id, False)]
    assert toasts[0]["text"]  # the bot's own words ("Already answered" in English)


async def test_live_updates_arrive_as_server_sent_events(page: PageApi) -> None:
    async with page.http.stream("GET", "api/events") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        events = _events(stream)
        first = await asyncio.wait_for(anext(events), 5)
        assert first["chats"][str(page.manager.id)] == []
        await page.send(page.manager.id, "/help")
        async with asyncio.timeout(10):
            async for state in events:
                chat = state["chats"][str(page.manager.id)]
                if any("Commands for managers" in item.get("html", "") for item in chat):
                    break


async def _events(stream: httpx.Response) -> AsyncIterator[JsonDict]:
    kind = ""
    async for line in stream.aiter_lines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind == "state":
            yield json.loads(line.removeprefix("data: "))


# --- the sandbox login dialog -------------------------------------------------------------------


async def test_the_dialog_is_a_labelled_sandbox_for_the_right_person(page: PageApi) -> None:
    link = await page.invite("anna.bakes")
    anna = page.playground.cast.influencers[0]
    dialog_url = await page.through_checks(anna, link)
    assert dialog_url.startswith(f"{page.playground.url}sandbox/facebook/v25.0/dialog/oauth?")
    dialog = await page.http.get(dialog_url)
    assert dialog.status_code == 200
    assert "SANDBOX" in dialog.text and "not Facebook" in dialog.text
    assert "Logged in as <b>Anna</b>" in dialog.text and "@anna.bakes" in dialog.text
    fields = form_fields(dialog.text)
    granted = [v for k, v in fields if k == "scope"]
    assert granted == list(page.playground.bot.settings.facebook_scopes)

    broken = await page.http.get(dialog_url.split("?")[0] + "?client_id=1")
    assert broken.status_code == 400 and "no state" in broken.text
    wrong_app = dialog_url.replace("client_id=", "client_id=9")
    refused = await page.http.post(wrong_app, data=form_data(fields))
    assert refused.status_code == 400 and "Invalid App ID" in refused.text


@dataclass(frozen=True)
class Case:
    outcome: Outcome
    drop: tuple[str, ...] = ()
    values: tuple[tuple[str, str], ...] = ()
    settings: tuple[tuple[str, object], ...] = ()


CASES = [
    Case(Outcome.CONNECTED),
    Case(Outcome.CANCELLED, values=(("action", "cancel"),)),
    Case(Outcome.APP_NOT_LIVE, values=(("action", "development_mode"),)),
    Case(Outcome.LOGIN_ERROR, values=(("trouble", "dialog_error"),)),
    Case(Outcome.LOGIN_EXPIRED, values=(("trouble", "code_expired"),)),
    Case(Outcome.FACEBOOK_UNAVAILABLE, values=(("trouble", "graph_down"),)),
    Case(Outcome.FACEBOOK_UNAVAILABLE, values=(("trouble", "rate_limited"),)),
    Case(Outcome.TOKEN_INVALID, values=(("trouble", "session_invalidated"),)),
    Case(Outcome.PERMISSIONS_DECLINED, drop=("scope=instagram_manage_insights",)),
    Case(Outcome.NO_PAGE, drop=("page-0-shared", "page-1-shared")),
    Case(
        # Only reachable when the bot does not ask for business_management: otherwise a missing
        # business_management is "permissions declined" first.
        Outcome.NO_PAGE_BUSINESS,
        values=(("page-0-business", "on"), ("page-1-business", "on")),
        settings=(("facebook_scopes", ("instagram_basic", "pages_show_list")),),
    ),
    Case(Outcome.PAGE_NO_ROLE, values=(("page-0-role", "none"),)),
    Case(Outcome.PAGE_UNPUBLISHED, drop=("page-0-published",)),
    Case(Outcome.IG_NOT_SELECTED, drop=("page-0-ig-shared",)),
    Case(Outcome.IG_HALF_LINKED, values=(("page-0-instagram", "half"),)),
    Case(Outcome.IG_OTHER_ACCOUNT, values=(("page-0-instagram", "other"),)),
    Case(Outcome.IG_OTHER_ACCOUNT, drop=("page-0-shared",)),  # the wrong Page selected
    Case(
        Outcome.IG_NOT_LINKED, values=(("page-0-instagram", "none"), ("page-1-instagram", "none"))
    ),
]


def test_every_verdict_has_a_way_through_the_sandbox() -> None:
    assert {case.outcome for case in CASES} == set(Outcome)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_playground() -> AsyncIterator[Playground]:
    """One playground for all verdict cases, each with an influencer of its own."""
    started = await start_playground()
    try:
        yield started
    finally:
        await started.stop()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("number", "case"),
    list(enumerate(CASES)),
    ids=[f"{c.outcome.value}-{i}" for i, c in enumerate(CASES)],
)
async def test_the_sandbox_produces_the_verdict(
    number: int, case: Case, shared_playground: Playground
) -> None:
    own = await start_playground(**dict(case.settings)) if case.settings else None
    started = own or shared_playground
    try:
        async with httpx.AsyncClient(base_url=started.url, timeout=10) as http:
            page = PageApi(started, http)
            influencer = started.cast.add_influencer()
            link = await page.invite(f"anna.bakes{number}")
            dialog_url = await page.through_checks(influencer, link)
            fields = form_fields((await http.get(dialog_url)).text)
            values = {k.replace("-", "_"): v for k, v in case.values}
            landed = await log_in(page, dialog_url, change(fields, drop=case.drop, **values))
            assert landed.status_code == 200
            assert str(landed.url).startswith(f"{started.bot.settings.public_url}/oauth/callback")

            # The verdict is stored before the callback answers; the messages follow (the e2e
            # tests check each verdict's wording, the browser test the chats).
            invite = await started.bot.db.invitations.active_invitation_of(influencer.id)
            assert invite is not None
            if case.outcome is Outcome.CONNECTED:
                assert invite.status == "connected"
                told = await started.telegram.wait_for(influencer.id, "Connected!")
                assert "12,480 followers" in told.text
            else:
                assert (invite.status, invite.last_reason) == ("failed", case.outcome.value)
    finally:
        if own is not None:
            await own.stop()


async def test_a_declined_permission_is_asked_again_on_retry(page: PageApi) -> None:
    anna = page.playground.cast.influencers[0]
    dialog_url = await page.through_checks(anna, await page.invite("anna.bakes"))
    fields = form_fields((await page.http.get(dialog_url)).text)
    await log_in(page, dialog_url, change(fields, drop=["scope=instagram_basic"]))
    await page.playground.telegram.wait_for(anna.id, "Not connected yet")
    assert (await page.press(anna.id, "Try again")).status_code == 200
    await page.playground.telegram.wait_idle()
    chat = (await page.state())["chats"][str(anna.id)]
    retry_url = await page.open_login(
        next(
            b["url"]
            for item in reversed(chat)
            for row in item.get("buttons", [])
            for b in row
            if "/oauth/start?" in b.get("url", "")
        )
    )
    assert "auth_type=rerequest" in retry_url
    retry = await page.http.get(retry_url)
    assert "asks again for permissions declined before" in retry.text
    await log_in(page, retry_url, form_fields(retry.text))
    await page.playground.telegram.wait_for(anna.id, "Connected!")


def test_the_consent_page_escapes_what_people_type() -> None:
    html = consent_page(
        app_name="<App>",
        person_name="<b>Eve</b>",
        person_id=1,
        handle="eve",
        requested=["instagram_basic", "x<y"],
        rerequest=False,
        pages=[PageSetup(name="<script>alert(1)</script>"), PageSetup(name="ok")],
    )
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<b>Eve</b>" not in html and "&lt;App&gt;" in html and "x&lt;y" in html


# --- the run command ----------------------------------------------------------------------------


async def test_run_command_with_nothing_configured_opens_the_playground(tmp_path: Path) -> None:
    port, playground_port = _free_port(), _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "HTTP_PORT": str(port),
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PLAYGROUND_PORT": str(playground_port),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        if not line:
            raise AssertionError((await proc.stderr.read()).decode())
        assert line.startswith(f"Playground: http://127.0.0.1:{playground_port}/ "), line
        async with httpx.AsyncClient(timeout=30) as http:
            state = (await http.get(f"http://127.0.0.1:{playground_port}/api/state")).json()
            assert state["manager"]["name"] == "Maria"
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have died already
            proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert out == b"" and "Traceback" not in err.decode()  # the one line was all


async def test_a_bad_playground_setting_is_one_line(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=tmp_path,
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "PLAYGROUND_PORT": "ninety",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    message = err.decode().strip()
    assert proc.returncode != 0 and len(message.splitlines()) == 1, message
    assert "PLAYGROUND_PORT" in message


async def test_photos_and_documents_the_bot_sends_are_shown(page: PageApi) -> None:
    anna = page.playground.cast.influencers[0]
    await page.send(anna.id, "/help")
    await page.playground.telegram.wait_idle()
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    bot = page.playground.bot.application.bot
    await bot.send_photo(anna.id, photo=png, caption="A card", filename="card.png")
    await bot.send_document(anna.id, document=b"a,b\n", filename="list.csv")
    chat = (await page.state())["chats"][str(anna.id)]
    photo, document = chat[-2], chat[-1]
    assert (photo["kind"], photo["html"]) == ("photo", "A card")
    shown = await page.http.get(photo["media"])
    assert shown.headers["Content-Type"] == "image/png" and shown.content == png
    saved = await page.http.get(document["media"])
    assert saved.headers["Content-Type"] == "application/octet-stream"
    assert "attachment" in saved.headers["Content-Disposition"] and saved.content == b"a,b\n"
    assert (await page.http.get(f"api/chats/{anna.id}/media/999")).status_code == 404
    assert (await page.http.get(f"api/chats/999/media/{photo['message_id']}")).status_code == 404


# --- Facebook's side: the panel acting on the Graph stand-in -------------------------------------


async def connect(page: PageApi, influencer: TgUser, handle: str) -> None:
    """Invite, answer the checks and log in granting everything, as the page does."""
    dialog_url = await page.through_checks(influencer, await page.invite(handle))
    fields = form_fields((await page.http.get(dialog_url)).text)
    await log_in(page, dialog_url, fields)
    await page.playground.telegram.wait_for(influencer.id, "Connected!")


async def act(page: PageApi, influencer: TgUser, action: str, **extra: str) -> httpx.Response:
    return await page.http.post(
        f"api/influencers/{influencer.id}/facebook", json={"action": action, **extra}
    )


def tokens_of(playground: Playground, user_id: str) -> list[str]:
    graph = playground.graph
    return [v for v in graph.issued_tokens() if graph.token_info(v).user_id == user_id]


async def graph_get(playground: Playground, path: str, token: str, **params: str) -> httpx.Response:
    """A Graph call as the bot makes it (with appsecret_proof), straight to the stand-in."""
    graph = playground.graph
    query = {"access_token": token, "appsecret_proof": graph.appsecret_proof(token), **params}
    async with httpx.AsyncClient(base_url=graph.base_url, timeout=10) as http:
        return await http.get(f"/v25.0/{path}", params=query)


async def debug_token(playground: Playground, token: str) -> JsonDict:
    graph = playground.graph
    async with httpx.AsyncClient(base_url=graph.base_url, timeout=10) as http:
        answer = await http.get(
            "/v25.0/debug_token",
            params={"input_token": token, "access_token": f"{graph.app_id}|{graph.app_secret}"},
        )
    return dict(answer.json()["data"])


async def test_rounds_come_every_minute_in_the_playground(playground: Playground) -> None:
    assert playground.bot.settings.health_check_interval_seconds == 60
    own = await start_playground(health_check_interval_seconds=5)
    try:
        assert own.bot.settings.health_check_interval_seconds == 5  # a setting of one's own wins
    finally:
        await own.stop()


async def test_the_panel_shows_the_connection_and_refuses_what_cannot_be(page: PageApi) -> None:
    anna = page.playground.cast.influencers[0]
    view = (await page.http.get(f"api/influencers/{anna.id}/facebook")).json()
    assert view["connection"] is None and view["graph_down"] is False
    assert view["check_interval_seconds"] == 60
    # Before any login: nobody at Facebook to act on, and no Page.
    early = await act(page, anna, "change_password")
    assert early.status_code == 409 and "has not logged in with Facebook" in early.json()["error"]
    no_page = await act(page, anna, "unpublish_page")
    assert no_page.status_code == 409 and "no connection yet" in no_page.json()["error"]
    assert (await act(page, anna, "explode")).status_code == 400
    assert (await act(page, anna, "remove_permission", permission="<x>")).status_code == 400
    manager = page.manager.id
    assert (await page.http.get(f"api/influencers/{manager}/facebook")).status_code == 400

    await connect(page, anna, "anna.bakes")
    view = (await page.http.get(f"api/influencers/{anna.id}/facebook")).json()
    shown = view["connection"]
    assert (shown["page"], shown["instagram"]) == ("Anna Bakes", "anna.bakes")
    assert shown["active"] is True
    assert shown["data_access_expires_at"]
    assert (shown["health_words"], shown["reason_words"]) == ("✅ healthy", None)


async def test_change_password_ends_the_persons_tokens_at_facebook(page: PageApi) -> None:
    anna = page.playground.cast.influencers[0]
    await connect(page, anna, "anna.bakes")
    connection = await page.playground.connection_of(anna.id)
    assert connection is not None
    tokens = tokens_of(page.playground, connection.facebook_user_id)
    assert tokens
    for token in tokens:
        assert (await debug_token(page.playground, token))["is_valid"] is True

    done = await act(page, anna, "change_password")
    assert done.status_code == 200 and "changed their Facebook password" in done.json()["text"]
    again = await act(page, anna, "change_password")  # a double tap: no harm
    assert again.status_code == 200
    for token in tokens:
        data = await debug_token(page.playground, token)
        assert data["is_valid"] is False and data["error"]["subcode"] == 460
        refused = await graph_get(page.playground, "me", token)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == 190


async def test_time_passes_for_data_access(page: PageApi) -> None:
    anna = page.playground.cast.influencers[0]
    await connect(page, anna, "anna.bakes")
    connection = await page.playground.connection_of(anna.id)
    assert connection is not None
    user_token = next(
        t
        for t in tokens_of(page.playground, connection.facebook_user_id)
        if page.playground.graph.token_info(t).kind == "USER"
    )
    now = page.playground.graph.now()

    done = await act(page, anna, "days_80")
    assert done.status_code == 200 and "ends in 10 days" in done.json()["text"]
    # What the bot's check reads: data access ends in ten days, still readable today.
    left = (await debug_token(page.playground, user_token))["data_access_expires_at"] - now
    assert 9.9 * 86400 < left <= 10 * 86400
    assert (await graph_get(page.playground, "me/accounts", user_token)).status_code == 200

    assert (await act(page, anna, "days_88")).status_code == 200
    left = (await debug_token(page.playground, user_token))["data_access_expires_at"] - now
    assert 1.9 * 86400 < left <= 2 * 86400

    assert (await act(page, anna, "days_90")).status_code == 200
    ended = await graph_get(page.playground, "me/accounts", user_token)
    assert ended.json()["error"]["code"] == 190  # data access expired: nothing readable


async def test_page_and_permission_actions(page: PageApi) -> None:
    anna = page.playground.cast.influencers[0]
    await connect(page, anna, "anna.bakes")
    playground = page.playground
    connection = await playground.connection_of(anna.id)
    assert connection is not None
    user_token = next(
        t
        for t in tokens_of(playground, connection.facebook_user_id)
        if playground.graph.token_info(t).kind == "USER"
    )

    async def the_page() -> JsonDict:
        answer = await graph_get(
            playground,
            "me/accounts",
            user_token,
            fields="id,is_published,instagram_business_account{id,username}",
        )
        pages = {p["id"]: p for p in answer.json()["data"]}
        return dict(pages.get(connection.page_id, {}))

    assert (await the_page())["is_published"] is True
    renamed = (await act(page, anna, "change_username")).json()["text"]
    assert renamed.endswith("is now called @anna.bakes.new on Instagram.")
    assert (await the_page())["instagram_business_account"]["username"] == "anna.bakes.new"
    twice = (await act(page, anna, "change_username")).json()
    assert twice["changed"] is False
    assert (await act(page, anna, "unpublish_page")).status_code == 200
    assert (await the_page())["is_published"] is False
    assert (await act(page, anna, "unlink_instagram")).status_code == 200
    assert "instagram_business_account" not in await the_page()

    removed = await act(page, anna, "remove_permission", permission="instagram_basic")
    assert removed.json()["changed"] is True
    assert "instagram_basic" not in (await debug_token(playground, user_token))["scopes"]
    assert (await act(page, anna, "remove_permission")).status_code == 200  # default: insights
    assert "instagram_manage_insights" not in (await debug_token(playground, user_token))["scopes"]
    assert (await act(page, anna, "remove_permission")).json()["changed"] is False

    assert (await act(page, anna, "remove_page_role")).status_code == 200
    assert await the_page() == {}  # no longer in /me/accounts
    assert (await act(page, anna, "remove_page_role")).json()["changed"] is False


async def test_remove_the_app_calls_the_bots_deauthorize_callback(page: PageApi) -> None:
    anna = page.playground.cast.influencers[0]
    await connect(page, anna, "anna.bakes")
    done = await act(page, anna, "remove_app")
    assert done.status_code == 200
    assert "Facebook called the bot's deauthorize callback" in done.json()["text"]
    connection = await page.playground.connection_of(anna.id)
    assert connection is not None and connection.status == "disconnected"
    view = (await page.http.get(f"api/influencers/{anna.id}/facebook")).json()
    assert view["connection"]["active"] is False
    # In the console's words, not codes.
    assert view["connection"]["health_words"] == "🔌 disconnected"
    assert view["connection"]["reason_words"] == "app removed on Facebook"
    for token in tokens_of(page.playground, connection.facebook_user_id):
        assert (await debug_token(page.playground, token))["is_valid"] is False


async def test_facebook_down_and_back_up(page: PageApi) -> None:
    graph = page.playground.graph
    down = await page.http.post("api/facebook/outage", json={"down": True})
    assert down.status_code == 200 and graph.outage is True
    assert (await page.http.post("api/facebook/outage", json={"down": True})).json()[
        "changed"
    ] is False
    async with httpx.AsyncClient(base_url=graph.base_url, timeout=10) as http:
        assert (await http.get("/v25.0/me")).json()["error"]["code"] == 2
    assert (await page.http.post("api/facebook/outage", json={"down": "yes"})).status_code == 400
    up = await page.http.post("api/facebook/outage", json={"down": False})
    assert up.status_code == 200 and graph.outage is False


async def test_check_now_finds_a_breakage_and_tells_the_influencer(page: PageApi) -> None:
    playground = page.playground
    anna = playground.cast.influencers[0]
    await connect(page, anna, "anna.bakes")
    # Graph down: the round checks nothing and breaks nothing.
    assert (await page.http.post("api/facebook/outage", json={"down": True})).status_code == 200
    assert (await act(page, anna, "change_password")).status_code == 200
    waited = await page.http.post("api/health-checks", json={})
    assert "Graph did not answer for 1 connection" in waited.json()["text"]
    connection = await playground.connection_of(anna.id)
    assert connection is not None and connection.health == "healthy"
    assert (await page.http.post("api/facebook/outage", json={"down": False})).status_code == 200

    checked = await page.http.post("api/health-checks", json={})
    assert checked.status_code == 200, checked.text
    assert checked.json()["text"].startswith("Checked 1 connection: 1 changed")
    connection = await playground.connection_of(anna.id)
    assert connection is not None
    assert (connection.health, connection.health_reason) == ("broken", "password_changed")
    view = (await page.http.get(f"api/influencers/{anna.id}/facebook")).json()
    assert view["connection"]["reason"] == "password_changed" and view["connection"]["checked_at"]
    assert view["connection"]["health_words"] == "⚠️ broken"
    assert view["connection"]["reason_words"] == "Facebook password changed"
    told = await playground.telegram.wait_for(anna.id, "stopped working")
    assert "password" in told.text and "Reconnect" in str(told.buttons)
    # The managers hear of it in the day's digest (in the playground: a minute after the check).


async def test_check_now_without_kept_tokens() -> None:
    started = await start_playground(verify_only=True)
    try:
        async with httpx.AsyncClient(base_url=started.url, timeout=10) as http:
            refused = await http.post("api/health-checks", json={})
        assert refused.status_code == 409 and "VERIFY_ONLY" in refused.json()["error"]
    finally:
        await started.stop()


# --- QA polish (issue 12) -----------------------------------------------------------------------


async def test_two_presses_at_once_get_their_own_toasts() -> None:
    """Maria and Anna press at the same moment; the bot answers Anna's press first. Each toast
    lands in the chat whose button was pressed (matched by the callback query's id)."""
    from playground.chats import Chats
    from playground.people import Cast
    from sandbox.telegram import TelegramStandin

    telegram = TelegramStandin()
    await telegram.start()
    try:
        cast = Cast()
        anna = cast.add_influencer()
        maria = cast.manager
        chats = Chats(telegram, cast)
        api = f"{telegram.base_url}{telegram.token}"
        async with httpx.AsyncClient(timeout=10) as http:
            for person in (maria, anna):
                telegram.send_text(person, "/start")
                sent = await http.post(
                    f"{api}/sendMessage",
                    json={
                        "chat_id": person.id,
                        "text": "Status",
                        "reply_markup": {
                            "inline_keyboard": [[{"text": "Refresh", "callback_data": "refresh"}]]
                        },
                    },
                )
                assert sent.json()["ok"], sent.text
            chats.press(maria.id, telegram.last_message(maria.id).message_id, "refresh")
            chats.press(anna.id, telegram.last_message(anna.id).message_id, "refresh")
            updates = (await http.post(f"{api}/getUpdates", json={"timeout": 0})).json()["result"]
            queries = {
                u["callback_query"]["from"]["id"]: u["callback_query"]["id"]
                for u in updates
                if "callback_query" in u
            }
            for person, text in ((anna, "Updated"), (maria, "Aktualisiert")):
                answered = await http.post(
                    f"{api}/answerCallbackQuery",
                    json={"callback_query_id": queries[person.id], "text": text},
                )
                assert answered.json()["ok"], answered.text
        chats.refresh()
        toasts = [(t["chat_id"], t["text"]) for t in chats.view()["toasts"]]
        assert toasts == [(anna.id, "Updated"), (maria.id, "Aktualisiert")]
    finally:
        await telegram.stop()


async def test_only_http_port_set_moves_the_login_links_with_it() -> None:
    """No PUBLIC_URL: the playground derives it from HTTP_HOST and HTTP_PORT, so the login
    buttons (and the platform pane, and /apikey's example) point at the bot's real port."""
    port = _free_port()
    settings = Settings(_env_file=None, http_port=port)  # type: ignore[call-arg]
    started = Playground(settings, PlaygroundSettings(_env_file=None, port=0))  # type: ignore[call-arg]
    await started.start()
    try:
        assert started.bot.settings.public_url == f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=started.url, timeout=30) as http:
            page = PageApi(started, http)
            anna = started.cast.influencers[0]
            dialog_url = await page.through_checks(anna, await page.invite("anna.bakes"))
            assert dialog_url.startswith(started.url)  # the bot's /oauth/start answered
            chat = (await page.state())["chats"][str(anna.id)]
            logins = [
                b["url"]
                for item in chat
                for row in item.get("buttons", [])
                for b in row
                if "/oauth/start?" in b.get("url", "")
            ]
            assert logins and all(u.startswith(f"http://127.0.0.1:{port}/") for u in logins)
            attachment = started.platform.attachment
            assert attachment is not None and attachment.api_url == f"http://127.0.0.1:{port}"
    finally:
        await started.stop()


async def test_http_port_zero_is_a_free_port_and_the_public_url_follows() -> None:
    from playground.composition import _bot_address

    settings = Settings(_env_file=None, http_port=0)  # type: ignore[call-arg]
    started = Playground(settings, PlaygroundSettings(_env_file=None, port=0))  # type: ignore[call-arg]
    await started.start()
    try:
        port = started.bot.http_port
        assert port and started.bot.settings.public_url == f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as http:
            healthy = await http.get(f"{started.bot.settings.public_url}/healthz")
        assert healthy.status_code == 200
        # An explicit PUBLIC_URL is kept as it is (a proxy in front, say).
        kept = Settings(  # type: ignore[call-arg]
            _env_file=None, http_port=0, public_url="https://example.test"
        )
        assert _bot_address(kept)[1] == "https://example.test"
    finally:
        await started.stop()


async def test_a_new_account_in_the_dialog_has_no_figures_and_profile_says_why(
    page: PageApi,
) -> None:
    """The sandbox dialog's "New account (no figures yet)": Instagram answers empty insights and
    no posts for it, and /profile explains that instead of showing zeros."""
    anna = page.playground.cast.influencers[0]
    dialog_url = await page.through_checks(anna, await page.invite("fresh.start"))
    dialog = (await page.http.get(dialog_url)).text
    assert 'name="page-0-new"' in dialog and "New account (no figures yet)" in dialog
    await log_in(page, dialog_url, change(form_fields(dialog), page_0_new="on"))
    await page.playground.telegram.wait_for(anna.id, "Connected!")
    assert (await page.send(page.manager.id, "/profile @fresh.start")).status_code == 200
    shown = await page.playground.telegram.wait_for(
        page.manager.id, "Instagram has no figures for this yet"
    )
    assert "Accounts reached: 0" not in shown.text
