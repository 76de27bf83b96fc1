"""The aiohttp app: the OAuth redirect target and a health check. Routes only parse the request
and render; `bot.connect.ConnectService` does the work."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.connect import ConnectService
from bot.i18n import Language, Texts, from_accept_language
from bot.store import Database
from web_callback.pages import render

log = logging.getLogger(__name__)

# Facebook's redirect carries a handful of short parameters; anything bigger is not Facebook.
MAX_QUERY_BYTES = 4096

_SECURITY_HEADERS = {
    # The page must not hand the URL (with code and state) to anyone: no referrer, no framing.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    ),
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def make_app(
    *,
    connect: ConnectService,
    db: Database,
    default_language: Language,
    bot_link: Callable[[], str | None],
) -> web.Application:
    """`bot_link` gives https://t.me/<bot username> once the bot knows its name."""
    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)

    async def oauth_callback(request: web.Request) -> web.Response:
        fallback = from_accept_language(request.headers.get("Accept-Language"), default_language)
        if len(request.query_string) > MAX_QUERY_BYTES:
            return _page(Texts(fallback), 414, "bad_request", bot_link())
        params = {k: v for k, v in request.query.items() if isinstance(v, str)}
        result = await connect.handle_redirect(params)
        t = Texts(result.language or fallback)
        return _page(t, result.http_status, result.page, bot_link(), username=result.username or "")

    async def healthz(request: web.Request) -> web.Response:
        ok = await db.ping()
        return web.json_response(
            {"status": "ok" if ok else "degraded", "database": ok}, status=200 if ok else 503
        )

    app.router.add_get("/oauth/callback", oauth_callback)
    app.router.add_get("/healthz", healthz)
    return app


def _page(t: Texts, status: int, key: str, bot_link: str | None, **values: object) -> web.Response:
    return web.Response(
        status=status,
        text=render(t, message_key=key, bot_link=bot_link, **values),
        content_type="text/html",
        charset="utf-8",
    )
