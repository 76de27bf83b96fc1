"""The playground's own aiohttp app: the chat page, the API it uses, and the sandbox login dialog.

It is a separate app on its own port that only the playground starts; the bot's callback server
(`web_callback.app`) knows nothing of it. Routes only parse, call `Chats` / the sandbox, and
render.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
from aiohttp import web

from bot.i18n import LANGUAGES
from playground.chats import ChatError, Chats
from playground.facebook_side import Done, FacebookAction, FacebookSide, PanelError
from playground.people import Cast
from playground.platform_side import RECEIVER_PATH, Platform
from playground.sandbox_login import (
    arm_trouble,
    build_login,
    default_pages,
    facebook_account,
    parse_form,
)
from playground.sandbox_page import consent_page, dialog_error_page
from sandbox.facebook import GraphStandin
from sandbox.instagram import SAMPLE_PEOPLE, IgPerson, InstagramStandin
from sandbox.telegram import TelegramStandin, TgUser

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
DIALOG_PREFIX = "/sandbox/facebook"
# Instagram's authorization window (the Instagram Login stand-in's consent page), served through
# the playground's own address so it opens wherever the page does.
INSTAGRAM_PREFIX = "/sandbox/instagram"
# The stand-in's page is one self-contained document: its inline style and its one-line script
# (typing a username ticks "Another account").
_INSTAGRAM_PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# A comment line now and then keeps proxies and browsers from closing an idle stream.
_KEEPALIVE_SECONDS = 15.0
_MAX_BODY = 64 * 1024
_PERMISSION_RE = re.compile(r"[a-z][a-z_]{0,63}")

_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
InvitedHandle = Callable[[int], Awaitable[str | None]]


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        for name, value in _HEADERS.items():
            exc.headers.setdefault(name, value)
        raise
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def make_app(
    *,
    cast: Cast,
    chats: Chats,
    telegram: TelegramStandin,
    graph: GraphStandin,
    facebook: FacebookSide,
    platform: Platform,
    invited_handle: InvitedHandle,
    closing: asyncio.Event,
    instagram: InstagramStandin | None = None,
) -> web.Application:
    """``invited_handle`` names the Instagram account a person is connecting right now (from the
    bot's database), so the sandbox dialog can offer exactly that account. ``facebook`` is the
    "Facebook's side" panel: what happens to a connection at Facebook after the login;
    ``platform`` the "platform" pane: the brand's webhook receiver and read API client."""
    app = web.Application(middlewares=[_headers], client_max_size=_MAX_BODY)
    index = (STATIC / "index.html").read_text(encoding="utf-8")

    def state() -> dict[str, Any]:
        return {
            "bot": {"name": telegram.bot_first_name, "username": telegram.bot_username},
            **cast.to_json(),
            "commands": {
                str(person.id): _menu(telegram, person)
                for person in (cast.manager, *cast.influencers)
            },
            **chats.view(),
            "platform": platform.view(),
        }

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=index, content_type="text/html", charset="utf-8")

    async def get_state(request: web.Request) -> web.Response:
        await platform.ready()
        return web.json_response(state())

    async def events(request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: the whole state at once, then again after every change."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        seen = -1
        try:
            while not closing.is_set():
                version = await chats.changed_since(seen, _KEEPALIVE_SECONDS)
                if closing.is_set():
                    break
                if version != seen:
                    seen = version
                    await platform.ready()
                    payload = json.dumps(state(), separators=(",", ":"))
                    await response.write(f"event: state\ndata: {payload}\n\n".encode())
                else:
                    await response.write(b": keep-alive\n\n")
        except ConnectionResetError:
            pass  # the tab was closed
        return response

    async def send(request: web.Request) -> web.Response:
        body = await _json(request)
        text = body.get("text")
        if not isinstance(text, str):
            raise _bad_request("text must be a string")
        await platform.ready()  # before the bot sees it: the platform hears what follows
        _act(lambda: chats.send_text(_chat_id(request), text))
        return web.json_response({"ok": True})

    async def press(request: web.Request) -> web.Response:
        body = await _json(request)
        message_id, data = body.get("message_id"), body.get("data")
        if not isinstance(message_id, int) or not isinstance(data, str):
            raise _bad_request("message_id must be a number and data a string")
        await platform.ready()
        _act(lambda: chats.press(_chat_id(request), message_id, data))
        return web.json_response({"ok": True})

    async def media(request: web.Request) -> web.Response:
        """The bytes of a photo or document the bot sent, for the page to show or download."""
        try:
            message = chats.media(_chat_id(request), int(request.match_info["message_id"]))
        except ChatError:
            message = None
        if message is None or message.document_bytes is None:
            raise web.HTTPNotFound()
        name = message.document_name or "file"
        # A message's file never changes (nothing here edits media): let the page cache it.
        headers = {"Cache-Control": "private, max-age=86400"}
        if message.kind != "photo":
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
        return web.Response(
            body=message.document_bytes,
            content_type=_media_type(message.document_bytes, name),
            headers=headers,
        )

    async def add_influencer(request: web.Request) -> web.Response:
        body = await _json(request)
        language = body.get("language", "en")
        if language not in LANGUAGES:
            raise _bad_request(f"language must be one of {', '.join(LANGUAGES)}")
        person = cast.add_influencer(language)
        chats.refresh(force=True)
        return web.json_response({"id": person.id, "name": person.first_name}, status=201)

    def influencer(request: web.Request) -> TgUser:
        person = cast.person(_chat_id(request))
        if person is None or person.id == cast.manager.id:
            raise _bad_request("no such influencer")
        return person

    async def facebook_view(request: web.Request) -> web.Response:
        return web.json_response(await facebook.view(influencer(request)))

    async def facebook_act(request: web.Request) -> web.Response:
        person = influencer(request)
        body = await _json(request)
        try:
            action = FacebookAction(str(body.get("action")))
        except ValueError:
            raise _bad_request(
                f"action must be one of {', '.join(a.value for a in FacebookAction)}"
            ) from None
        permission = body.get("permission", "")
        if not isinstance(permission, str) or not _PERMISSION_RE.fullmatch(permission or "x"):
            raise _bad_request("permission must be a permission's name, like instagram_basic")
        extra = {"permission": permission} if permission else {}
        return await _done(facebook.act(person, action, **extra))

    async def outage(request: web.Request) -> web.Response:
        body = await _json(request)
        down = body.get("down")
        if not isinstance(down, bool):
            raise _bad_request("down must be true or false")
        return _answer(facebook.set_outage(down))

    async def check_now(request: web.Request) -> web.Response:
        return await _done(facebook.check_now())

    async def platform_receive(request: web.Request) -> web.Response:
        status = platform.receive(request.headers, await request.read())
        if status == 400:
            raise _bad_request("not a webhook event")
        return web.json_response({"ok": status < 300}, status=status)

    async def platform_connections(request: web.Request) -> web.Response:
        return web.json_response((await platform.read("/api/v1/connections")).to_json())

    async def platform_connection(request: web.Request) -> web.Response:
        path = f"/api/v1/connections/{int(request.match_info['invitation_id'])}"
        return web.json_response((await platform.read(path)).to_json())

    async def platform_answer(request: web.Request) -> web.Response:
        fail = (await _json(request)).get("fail")
        if not isinstance(fail, bool):
            raise _bad_request("fail must be true or false")
        platform.set_failing(fail)
        return web.json_response({"ok": True, "failing": fail})

    async def dialog(request: web.Request) -> web.Response:
        query = {k: v for k, v in request.query.items() if isinstance(v, str)}
        if not query.get("state") or not query.get("scope"):
            return _html(
                dialog_error_page("The login link is incomplete: it has no state or no scope."),
                400,
            )
        person = _who_opened(cast, telegram, query["state"])
        handle = await invited_handle(person.id) if person is not None else None
        name = person.first_name if person is not None else "You"
        return _html(
            consent_page(
                app_name=graph.app_name,
                person_name=name,
                person_id=person.id if person is not None else None,
                handle=handle or "",
                requested=_scopes(query["scope"]),
                rerequest=query.get("auth_type") == "rerequest",
                reauthorize=query.get("auth_type") == "reauthorize",
                pages=default_pages(name, handle or ""),
            )
        )

    async def dialog_submit(request: web.Request) -> web.Response:
        query = {k: v for k, v in request.query.items() if isinstance(v, str)}
        form = await request.post()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        granted = [v for v in form.getall("scope", []) if isinstance(v, str)]
        requested = _scopes(query.get("scope", ""))
        try:
            choice = parse_form(fields, granted, requested)
        except ValueError as exc:
            return _html(dialog_error_page(str(exc)), 400)
        person_id = int(fields["person"]) if fields.get("person", "").isdigit() else None
        person = cast.person(person_id) if person_id is not None else None
        account = facebook_account(person_id, person.first_name if person else None)
        login = build_login(choice, account, requested)
        try:
            location = graph.complete_dialog(
                query, login.user, login.consent, version=request.match_info["version"]
            )
        except ValueError as exc:
            return _html(dialog_error_page(str(exc)), 400)
        if "code" in parse_qs(urlsplit(location).query):
            arm_trouble(graph, login.trouble)
            for account_id in login.new_accounts:
                graph.set_new_account(account_id)
            facebook.logged_in(login.user.id)
        raise web.HTTPSeeOther(location)

    async def instagram_window(request: web.Request) -> web.StreamResponse:
        """Instagram's authorization window: the stand-in's consent page, with the account the
        person was invited with chosen already (as Instagram shows whoever is logged in)."""
        assert instagram is not None
        query = {k: v for k, v in request.query.items() if isinstance(v, str)}
        body = await request.read() if request.method == "POST" else None
        if request.method == "GET" and query.get("state"):
            person = _who_opened(cast, telegram, query["state"])
            handle = await invited_handle(person.id) if person is not None else None
            if person is not None and handle:
                try:
                    known = instagram.person(handle)
                except KeyError:  # a sample account, else a new one in the person's name
                    known = next(
                        (replace(p) for p in SAMPLE_PEOPLE if p.username == handle),
                        IgPerson(handle, name=person.first_name),
                    )
                instagram.set_person(known)
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method,
                f"{instagram.base_url}/oauth/authorize",
                params=query,
                data=body,
                headers={"Content-Type": request.content_type} if body is not None else None,
                allow_redirects=False,
            ) as answer,
        ):
            text = await answer.text()
            location = answer.headers.get("Location")
        if location is not None:
            raise web.HTTPSeeOther(location)
        response = web.Response(
            text=text, status=answer.status, content_type=answer.content_type, charset="utf-8"
        )
        response.headers["Content-Security-Policy"] = _INSTAGRAM_PAGE_POLICY
        return response

    app.router.add_get("/", page)
    if instagram is not None:
        app.router.add_get(INSTAGRAM_PREFIX + "/oauth/authorize", instagram_window)
        app.router.add_post(INSTAGRAM_PREFIX + "/oauth/authorize", instagram_window)
    app.router.add_static("/static", STATIC)
    app.router.add_get("/api/state", get_state)
    app.router.add_get("/api/events", events)
    app.router.add_post(r"/api/chats/{chat_id:\d+}/messages", send)
    app.router.add_post(r"/api/chats/{chat_id:\d+}/presses", press)
    app.router.add_get(r"/api/chats/{chat_id:\d+}/media/{message_id:\d+}", media)
    app.router.add_post("/api/influencers", add_influencer)
    app.router.add_get(r"/api/influencers/{chat_id:\d+}/facebook", facebook_view)
    app.router.add_post(r"/api/influencers/{chat_id:\d+}/facebook", facebook_act)
    app.router.add_post("/api/facebook/outage", outage)
    app.router.add_post("/api/health-checks", check_now)
    app.router.add_post(RECEIVER_PATH, platform_receive)
    app.router.add_get("/api/platform/connections", platform_connections)
    app.router.add_get(r"/api/platform/connections/{invitation_id:\d{1,18}}", platform_connection)
    app.router.add_post("/api/platform/answer", platform_answer)
    dialog_path = DIALOG_PREFIX + r"/{version:v\d+\.\d+}/dialog/oauth"
    app.router.add_get(dialog_path, dialog)
    app.router.add_post(dialog_path, dialog_submit)
    return app


_IMAGE_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
)


def _media_type(content: bytes, name: str) -> str:
    """By the bytes for images (never trust a name for what the page shows inline)."""
    for magic, kind in _IMAGE_TYPES:
        if content.startswith(magic):
            return kind
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def _scopes(raw: str) -> list[str]:
    return [s for s in re.split(r"[,\s]+", raw) if s]


def _menu(telegram: TelegramStandin, person: TgUser) -> list[dict[str, Any]]:
    """The command menu Telegram would show this person: their chat's own, else the default for
    their language, else the default."""
    for scope, language in (
        ({"type": "chat", "chat_id": person.id}, ""),
        (None, person.language_code or ""),
        (None, ""),
    ):
        menu = telegram.commands_for(scope, language)
        if menu:
            return menu
    return []


def _who_opened(cast: Cast, telegram: TelegramStandin, state: str) -> TgUser | None:
    """The person whose chat holds the login button with this state."""
    for person in (*cast.influencers, cast.manager):
        for message in telegram.messages(person.id):
            for row in message.buttons:
                for button in row:
                    url = button.get("url")
                    if url and parse_qs(urlsplit(str(url)).query).get("state") == [state]:
                        return person
    return None


def _chat_id(request: web.Request) -> int:
    return int(request.match_info["chat_id"])


def _act(action: Callable[[], None]) -> None:
    try:
        action()
    except ChatError as exc:
        raise _bad_request(str(exc)) from None


async def _done(action: Awaitable[Done]) -> web.Response:
    try:
        return _answer(await action)
    except PanelError as exc:
        raise web.HTTPConflict(
            text=json.dumps({"error": str(exc)}), content_type="application/json"
        ) from None


def _answer(done: Done) -> web.Response:
    return web.json_response({"ok": True, "text": done.text, "changed": done.changed})


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _bad_request("the body must be JSON") from None
    if not isinstance(body, dict):
        raise _bad_request("the body must be a JSON object")
    return body


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
