"""The stand-ins behave like Telegram and Facebook: driven by real clients over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.error import BadRequest, Forbidden, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from sandbox.facebook import Consent, FbPage, FbUser, GraphStandin, IgAccount
from sandbox.telegram import TelegramStandin, TgUser, parse_html

ANNA = TgUser(id=4201, first_name="Anna", username="anna_k", language_code="de")

# -- Telegram -----------------------------------------------------------------------------------


@pytest.fixture
async def tg() -> AsyncIterator[TelegramStandin]:
    standin = TelegramStandin()
    await standin.start()
    yield standin
    await standin.stop()
    assert not standin.internal_errors


@asynccontextmanager
async def running_bot(
    tg: TelegramStandin, handlers: Sequence[BaseHandler[Any, Any, Any]]
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    app = (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(tg.base_url)
        .base_file_url(tg.base_file_url)
        .build()
    )
    app.add_handlers(list(handlers))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0)
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


@asynccontextmanager
async def bot_for(tg: TelegramStandin) -> AsyncIterator[Bot]:
    async with Bot(tg.token, base_url=tg.base_url) as bot:
        yield bot


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Connect Instagram", callback_data="connect")],
            [InlineKeyboardButton("Help", url="https://example.org/help")],
        ]
    )
    assert update.effective_user is not None
    await update.message.reply_html(
        f"<b>Hi {update.effective_user.first_name}</b>, invite {context.args}",
        reply_markup=keyboard,
    )


async def connect(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer("One moment")
    await query.edit_message_text(f"Connecting ({query.from_user.language_code})")


async def test_command_reply_and_button_press_through_real_polling(tg: TelegramStandin) -> None:
    async with running_bot(tg, [CommandHandler("start", start), CallbackQueryHandler(connect)]):
        tg.send_text(ANNA, "/start inv_42")
        greeting = await tg.wait_for(ANNA.id, "hi anna")
        assert greeting.text == "Hi Anna, invite ['inv_42']"
        assert greeting.html.startswith("<b>Hi Anna</b>")
        assert greeting.entities == [{"offset": 0, "length": 7, "type": "bold"}]
        assert greeting.button("connect")["callback_data"] == "connect"

        with pytest.raises(AssertionError, match="URL button"):
            tg.press(ANNA, greeting, "help")
        tg.press(ANNA, greeting, "connect")
        edited = await tg.wait_for(ANNA.id, "connecting (de)")
        await tg.wait_idle()

    assert edited is greeting and greeting.edits == 1
    assert greeting.buttons == []  # an edit without reply_markup removes the keyboard
    assert tg.callback_answers[0]["text"] == "One moment"
    methods = [method for method, _ in tg.requests]
    assert methods[:2] == ["getMe", "deleteWebhook"]
    assert methods.count("sendMessage") == 1


async def test_command_with_bot_username_suffix(tg: TelegramStandin) -> None:
    async with running_bot(tg, [CommandHandler("start", start)]):
        tg.send_text(ANNA, f"/start@{tg.bot_username} xyz")
        await tg.wait_for(ANNA.id, "['xyz']")


async def test_document_round_trip(tg: TelegramStandin) -> None:
    async def receive(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.document is not None
        file = await update.message.document.get_file()
        content = bytes(await file.download_as_bytearray())
        await update.message.reply_document(content[::-1], filename="reversed.txt", caption="ok")

    async with running_bot(tg, [MessageHandler(filters.Document.ALL, receive)]):
        tg.send_document(ANNA, "report.txt", b"hello", caption="my report")
        sent = await tg.wait_for(ANNA.id, "ok")
    assert (sent.kind, sent.document_name, sent.document_bytes) == (
        "document",
        "reversed.txt",
        b"olleh",
    )


async def test_a_bot_cannot_write_first_or_to_someone_who_blocked_it(tg: TelegramStandin) -> None:
    async with bot_for(tg) as bot:
        with pytest.raises(Forbidden, match="can't initiate conversation"):
            await bot.send_message(ANNA.id, "hello")
        tg.send_text(ANNA, "/start")
        await bot.send_message(ANNA.id, "hello")
        tg.block(ANNA.id)
        with pytest.raises(Forbidden, match="blocked by the user"):
            await bot.send_message(ANNA.id, "still there?")


async def test_callback_data_is_limited_to_64_bytes(tg: TelegramStandin) -> None:
    tg.send_text(ANNA, "/start")
    async with bot_for(tg) as bot:
        fits = "ä" * 32  # 32 characters, 64 bytes
        await bot.send_message(
            ANNA.id,
            "ok",
            reply_markup=InlineKeyboardMarkup.from_button(
                InlineKeyboardButton("x", callback_data=fits)
            ),
        )
        too_long = "ä" * 33  # 33 characters, 66 bytes
        with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
            await bot.send_message(
                ANNA.id,
                "no",
                reply_markup=InlineKeyboardMarkup.from_button(
                    InlineKeyboardButton("x", callback_data=too_long)
                ),
            )
    assert [m.text for m in tg.messages(ANNA.id)] == ["ok"]


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("line<br>break", 'unsupported start tag "br" at byte offset 4'),
        ("<b>bold", 'can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("1 < 2", 'unsupported start tag "" at byte offset 2'),
    ],
)
async def test_html_that_telegram_rejects(tg: TelegramStandin, html: str, error: str) -> None:
    tg.send_text(ANNA, "/start")
    async with bot_for(tg) as bot:
        with pytest.raises(BadRequest) as caught:
            await bot.send_message(ANNA.id, html, parse_mode="HTML")
    # PTB drops the "Bad Request: " prefix and lower-cases the rest.
    assert caught.value.message == f"Can't parse entities: {error}"


async def test_html_is_shown_as_plain_text_with_entities(tg: TelegramStandin) -> None:
    tg.send_text(ANNA, "/start")
    async with bot_for(tg) as bot:
        message = await bot.send_message(
            ANNA.id,
            '  <i>1 &lt; 2</i> &amp; <a href="https://t.me/x">link</a> 🏟 '
            "<tg-spoiler>s</tg-spoiler>",
            parse_mode="HTML",
        )
        assert message.text_html.startswith("<i>1 &lt; 2</i>")  # PTB reads our entities
        with pytest.raises(BadRequest, match="(?i)message text is empty"):
            await bot.send_message(ANNA.id, "<b> </b>", parse_mode="HTML")
        with pytest.raises(BadRequest, match="(?i)message is too long"):
            await bot.send_message(ANNA.id, "x" * 4097)
    shown = tg.last_message(ANNA.id)
    assert shown.text == "1 < 2 & link 🏟 s"  # leading whitespace trimmed, like Telegram
    assert shown.entities[-1] == {"offset": 16, "length": 1, "type": "spoiler"}  # UTF-16 units
    assert parse_html('<pre><code class="language-py">x</code></pre>')[1] == [
        {"offset": 0, "length": 1, "type": "pre", "language": "py"}
    ]


async def test_flood_limit_answers_429_with_retry_after(
    tg: TelegramStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PTB 22 warns about int retry_after unless told to use timedelta.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    tg.send_text(ANNA, "/start")
    tg.set_rate_limits(per_chat_per_second=1)
    async with bot_for(tg) as bot:
        await bot.send_message(ANNA.id, "first")
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(ANNA.id, "second")
    assert caught.value.retry_after.total_seconds() == 1  # type: ignore[union-attr]
    assert tg.rate_limited_count == 1
    assert [m.text for m in tg.messages(ANNA.id)] == ["first"]


async def test_identical_edit_is_not_modified(tg: TelegramStandin) -> None:
    tg.send_text(ANNA, "/start")
    markup = InlineKeyboardMarkup.from_button(InlineKeyboardButton("Go", callback_data="go"))
    async with bot_for(tg) as bot:
        sent = await bot.send_message(
            ANNA.id, "<b>Same</b>", parse_mode="HTML", reply_markup=markup
        )
        with pytest.raises(BadRequest, match="(?i)message is not modified"):
            await sent.edit_text("<b>Same</b>", parse_mode="HTML", reply_markup=markup)
        await sent.edit_text("<b>Same</b>", parse_mode="HTML")  # dropping the keyboard is a change
        with pytest.raises(BadRequest, match="(?i)message to edit not found"):
            await bot.edit_message_text("x", chat_id=ANNA.id, message_id=999)
    assert tg.last_message(ANNA.id).edits == 1


async def test_raw_wire_format(tg: TelegramStandin) -> None:
    api = f"{tg.base_url}{tg.token}"
    async with httpx.AsyncClient() as client:
        wrong = await client.post(f"{tg.base_url}000:wrong/getMe")
        assert (wrong.status_code, wrong.json()) == (
            401,
            {"ok": False, "error_code": 401, "description": "Unauthorized"},
        )
        unknown = await client.post(f"{api}/sendTelepathy")
        assert (unknown.status_code, unknown.json()["description"]) == (404, "Not Found")

        tg.send_text(ANNA, "one")
        first = (await client.post(f"{api}/getUpdates", data={"timeout": "5"})).json()
        update_id = first["result"][0]["update_id"]
        assert first["result"][0]["message"]["from"]["language_code"] == "de"
        # Asking from a later offset confirms the update: it is gone for good.
        again = await client.post(f"{api}/getUpdates", json={"offset": update_id + 1})
        assert again.json() == {"ok": True, "result": []}

        tg.fail_next(
            "sendMessage", status=429, description="Too Many Requests: retry after 7", retry_after=7
        )
        fault = await client.post(f"{api}/sendMessage", data={"chat_id": ANNA.id, "text": "x"})
        assert fault.status_code == 429
        assert fault.json()["parameters"] == {"retry_after": 7}

        await client.post(f"{api}/setWebhook", data={"url": "https://bot.example/hook"})
        conflict = await client.post(f"{api}/getUpdates")
        assert conflict.status_code == 409


async def test_commands_menus_per_scope(tg: TelegramStandin) -> None:
    async with bot_for(tg) as bot:
        await bot.set_my_commands([BotCommand("start", "Start")])
        with pytest.raises(BadRequest, match="(?i)chat not found"):
            await bot.set_my_commands(
                [BotCommand("invite", "Invite")], scope=BotCommandScopeChat(ANNA.id)
            )
        tg.send_text(ANNA, "/start")
        await bot.set_my_commands(
            [BotCommand("invite", "Invite")], scope=BotCommandScopeChat(ANNA.id)
        )
    assert tg.commands["default"] == [{"command": "start", "description": "Start"}]
    assert tg.commands_for({"type": "chat", "chat_id": ANNA.id})[0]["command"] == "invite"
    assert json.dumps({"type": "chat", "chat_id": ANNA.id}) in tg.commands


# -- Facebook -----------------------------------------------------------------------------------

REDIRECT = "https://connect.example/fb/callback"
SCOPES = "pages_show_list,pages_read_engagement,instagram_basic,instagram_manage_insights"
ANNA_IG = IgAccount(id="17841400000000001", username="anna.makes")


def anna_on_facebook() -> FbUser:
    return FbUser(
        id="10001",
        name="Anna K",
        pages=[
            FbPage("p1", "Anna Makes", instagram=ANNA_IG),
            FbPage("p2", "Anna's Bakery"),
            FbPage("p3", "Old Page", is_published=False),
            FbPage("p4", "Agency Page", business_owned=True),
        ],
    )


async def login(
    fb: GraphStandin, http: httpx.AsyncClient, scope: str = SCOPES, **extra: str
) -> dict[str, str]:
    """Walk the dialog like a browser; the query parameters Facebook redirects with."""
    answer = await http.get(
        f"{fb.base_url}/v25.0/dialog/oauth",
        params={
            "client_id": fb.app_id,
            "redirect_uri": REDIRECT,
            "state": "st4te",
            "response_type": "code",
            "scope": scope,
            **extra,
        },
    )
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def exchange(fb: GraphStandin, http: httpx.AsyncClient, code: str) -> httpx.Response:
    return await http.get(
        f"{fb.base_url}/v25.0/oauth/access_token",
        params={
            "client_id": fb.app_id,
            "client_secret": fb.app_secret,
            "redirect_uri": REDIRECT,
            "code": code,
        },
    )


async def token_for(fb: GraphStandin, http: httpx.AsyncClient, scope: str = SCOPES) -> str:
    answer = await exchange(fb, http, (await login(fb, http, scope))["code"])
    return str(answer.json()["access_token"])


async def graph_get(
    fb: GraphStandin, http: httpx.AsyncClient, path: str, token: str, **params: str
) -> httpx.Response:
    proof = hmac.new(fb.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    return await http.get(
        f"{fb.base_url}/v25.0/{path}",
        params={"access_token": token, "appsecret_proof": proof, **params},
    )


async def test_dialog_code_exchange_and_single_use_code(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    fb.set_person(anna_on_facebook())
    redirected = await login(fb, http)
    assert redirected["state"] == "st4te"

    wrong_uri = await http.get(
        f"{fb.base_url}/v25.0/oauth/access_token",
        params={
            "client_id": fb.app_id,
            "client_secret": fb.app_secret,
            "redirect_uri": REDIRECT + "?invite=1",
            "code": redirected["code"],
        },
    )
    assert wrong_uri.json()["error"]["error_subcode"] == 36008

    first = await exchange(fb, http, redirected["code"])
    assert first.status_code == 200
    assert first.json()["token_type"] == "bearer"
    assert 3600 <= first.json()["expires_in"] <= 7200
    assert first.json()["access_token"] in fb.issued_tokens()

    replay = await exchange(fb, http, redirected["code"])
    assert replay.status_code == 400
    assert replay.json()["error"]["code"] == 100
    assert replay.json()["error"]["error_subcode"] == 36009

    long_lived = await http.get(
        f"{fb.base_url}/v25.0/oauth/access_token",
        params={
            "grant_type": "fb_exchange_token",
            "client_id": fb.app_id,
            "client_secret": fb.app_secret,
            "fb_exchange_token": first.json()["access_token"],
        },
    )
    assert long_lived.json()["expires_in"] == 5_184_000
    assert long_lived.json()["access_token"] != first.json()["access_token"]


async def test_cancel_and_development_mode(fb: GraphStandin, http: httpx.AsyncClient) -> None:
    fb.set_person(anna_on_facebook(), Consent(cancel=True))
    cancelled = await login(fb, http)
    assert cancelled == {
        "error": "access_denied",
        "error_reason": "user_denied",
        "error_description": "Permissions error.",
        "state": "st4te",
    }
    fb.set_person(anna_on_facebook(), Consent(app_not_live=True))
    assert (await login(fb, http))["error_code"] == "200"

    bad_app = await http.get(f"{fb.base_url}/v25.0/dialog/oauth", params={"client_id": "666"})
    assert bad_app.status_code == 400
    assert "text/html" in bad_app.headers["content-type"]


async def test_debug_token_reports_deselected_pages(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    fb.set_person(anna_on_facebook(), Consent(pages={"p2"}, declined={"instagram_manage_insights"}))
    token = await token_for(fb, http)
    debug = await http.get(
        f"{fb.base_url}/v25.0/debug_token",
        params={"input_token": token, "access_token": f"{fb.app_id}|{fb.app_secret}"},
    )
    data = debug.json()["data"]
    assert data["is_valid"] is True and data["user_id"] == "10001"
    assert data["app_id"] == fb.app_id
    assert "instagram_manage_insights" not in data["scopes"]
    granular = {g["scope"]: g.get("target_ids") for g in data["granular_scopes"]}
    assert granular["pages_show_list"] == ["p2"]
    assert granular["instagram_basic"] == []  # p2 has no Instagram account

    permissions = await graph_get(fb, http, "me/permissions", token)
    statuses = {p["permission"]: p["status"] for p in permissions.json()["data"]}
    assert statuses["instagram_manage_insights"] == "declined"
    assert statuses["public_profile"] == "granted"

    unknown = await http.get(
        f"{fb.base_url}/v25.0/debug_token",
        params={"input_token": "EAAnope", "access_token": f"{fb.app_id}|{fb.app_secret}"},
    )
    assert unknown.json()["data"]["is_valid"] is False


async def test_declined_permissions_stick_until_rerequest(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    fb.set_person(anna_on_facebook(), Consent(declined={"instagram_basic"}))
    await login(fb, http)
    fb.set_person(anna_on_facebook(), Consent())  # this time she would tick everything...
    token = await token_for(fb, http)
    statuses = {
        p["permission"]: p["status"]
        for p in (await graph_get(fb, http, "me/permissions", token)).json()["data"]
    }
    assert statuses["instagram_basic"] == "declined"  # ...but Facebook does not ask again

    redirected = await login(fb, http, auth_type="rerequest")
    token = (await exchange(fb, http, redirected["code"])).json()["access_token"]
    statuses = {
        p["permission"]: p["status"]
        for p in (await graph_get(fb, http, "me/permissions", token)).json()["data"]
    }
    assert statuses["instagram_basic"] == "granted"
    assert fb.dialog_requests[-1]["auth_type"] == "rerequest"


async def test_me_accounts_pages_and_hides_business_pages(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    fb.set_person(anna_on_facebook())
    fields = "id,name,is_published,instagram_business_account{id,username}"

    async def all_pages(token: str) -> list[dict[str, Any]]:
        answer = await graph_get(fb, http, "me/accounts", token, fields=fields)
        pages = list(answer.json()["data"])
        while "next" in answer.json()["paging"]:
            answer = await http.get(answer.json()["paging"]["next"])
            assert answer.status_code == 200
            pages += answer.json()["data"]
        return pages

    pages = await all_pages(await token_for(fb, http))
    assert [p["id"] for p in pages] == ["p1", "p2", "p3"]  # p4 belongs to a business portfolio
    assert pages[0]["instagram_business_account"] == {"id": ANNA_IG.id, "username": "anna.makes"}
    assert "instagram_business_account" not in pages[1]
    assert pages[2]["is_published"] is False
    assert set(pages[1]) == {"id", "name", "is_published"}

    with_business = await token_for(fb, http, SCOPES + ",business_management")
    assert [p["id"] for p in await all_pages(with_business)] == ["p1", "p2", "p3", "p4"]


async def test_instagram_account_needs_instagram_basic(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    fb.set_person(anna_on_facebook())
    token = await token_for(fb, http)
    account = await graph_get(fb, http, ANNA_IG.id, token, fields="username,followers_count")
    assert account.json() == {"username": "anna.makes", "followers_count": 1200, "id": ANNA_IG.id}

    fb.set_person(anna_on_facebook(), Consent(declined={"instagram_basic"}))
    token = (
        await exchange(fb, http, (await login(fb, http, auth_type="rerequest"))["code"])
    ).json()["access_token"]
    refused = await graph_get(fb, http, ANNA_IG.id, token, fields="username")
    assert refused.json()["error"]["code"] == 10
    missing = await graph_get(fb, http, "17841499999999999", token, fields="username")
    assert (missing.json()["error"]["code"], missing.json()["error"]["error_subcode"]) == (100, 33)


async def test_appsecret_proof_is_enforced(fb: GraphStandin, http: httpx.AsyncClient) -> None:
    fb.set_person(anna_on_facebook())
    token = await token_for(fb, http)
    bare = await http.get(f"{fb.base_url}/v25.0/me", params={"access_token": token})
    assert bare.status_code == 400
    assert bare.json()["error"]["message"] == (
        "API calls from the server require an appsecret_proof argument"
    )
    forged = await http.get(
        f"{fb.base_url}/v25.0/me", params={"access_token": token, "appsecret_proof": "00" * 32}
    )
    assert forged.json()["error"]["message"] == (
        "Invalid appsecret_proof provided in the API argument"
    )
    me = await graph_get(fb, http, "me", token, fields="id,name")
    assert me.json() == {"id": "10001", "name": "Anna K"}


async def test_revoked_tokens_and_injected_faults(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    fb.set_person(anna_on_facebook())
    token = await token_for(fb, http)

    fb.fail_next("/me/accounts", code=2, message="An unexpected error has occurred.")
    transient = await graph_get(fb, http, "me/accounts", token)
    assert (transient.status_code, transient.json()["error"]["code"]) == (500, 2)

    fb.fail_network("/me/accounts")
    with pytest.raises(httpx.RemoteProtocolError):
        await graph_get(fb, http, "me/accounts", token)
    assert (await graph_get(fb, http, "me/accounts", token)).status_code == 200

    proof = hmac.new(fb.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    removed = await http.delete(
        f"{fb.base_url}/v25.0/me/permissions",
        params={"access_token": token, "appsecret_proof": proof},
    )
    assert removed.json() == {"success": True}
    assert fb.revoked == ["10001"]
    dead = await graph_get(fb, http, "me", token)
    assert (dead.json()["error"]["code"], dead.json()["error"]["error_subcode"]) == (190, 458)
