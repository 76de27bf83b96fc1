"""The aiohttp app: the OAuth redirect targets (Facebook Login's and Instagram Login's), a
health check, Meta's deauthorize and data deletion callbacks with the deletion status page and,
in webhook mode, the route Telegram delivers updates to. Routes only parse the request and
render; `bot.connect.ConnectService` and `bot.meta.PrivacyService` do the work, and PTB's
Application handles the updates put on its queue."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from urllib.parse import parse_qsl

from aiohttp import web
from telegram import Bot, Update

from bot.connect import CONFIRM_PATH, START_PATH, ConnectService, RedirectResult
from bot.i18n import Language, Texts, from_accept_language
from bot.login_secrets import LOGIN_COOKIE
from bot.meta import STATUS_PATH, PrivacyService, SignatureProblem, SignedRequest
from bot.metrics import Metrics
from bot.models import LoginPath
from bot.store import Database
from web_callback.api import ReadApi
from web_callback.pages import render, render_confirm, render_text

log = logging.getLogger(__name__)

# Facebook's redirect carries a handful of short parameters; anything bigger is not Facebook.
MAX_QUERY_BYTES = 4096
# No route takes more than a small form (Meta's signed_request) except the webhook.
MAX_BODY_BYTES = 64 * 1024
# A Telegram update is a message of at most 4096 characters plus what it quotes and replies to;
# a quarter of a megabyte leaves room for every real one.
MAX_UPDATE_BYTES = 256 * 1024
# Meta's callbacks are a form with one signed_request of a few hundred characters.
MAX_META_FORM_BYTES = 8 * 1024
_MAX_META_FORM_FIELDS = 16
# The login confirmation posts one token.
MAX_CONFIRM_BYTES = 1024
_FORM = "application/x-www-form-urlencoded"

WEBHOOK_PATH = "/telegram/webhook"
DEAUTHORIZE_PATH = "/meta/deauthorize"
DATA_DELETION_PATH = "/meta/data-deletion"
# Facebook Login's redirect target, and Instagram Login's (the second Meta app's own "Valid
# OAuth Redirect URIs" entry, `Settings.instagram_redirect_uri`).
CALLBACK_PATH = "/oauth/callback"
INSTAGRAM_CALLBACK_PATH = "/oauth/instagram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# telegram_update.update_id is a BIGINT.
_MAX_UPDATE_ID = 2**63 - 1
# The redirect parameters a request may carry only once: two states or two codes are a forgery.
_SINGLE_KEYS = frozenset({"state", "code", "error", "error_code", "error_reason"})

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

_CONFIRM_CSP = _SECURITY_HEADERS["Content-Security-Policy"].replace(
    "form-action 'none'", "form-action 'self'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer (404, 405, 413 and an unexpected error included) carries the headers, and no
    route sees a query string longer than any real caller sends."""
    try:
        if len(request.query_string) > MAX_QUERY_BYTES:
            raise web.HTTPRequestURITooLong(text="request URI too long")
        response = await handler(request)
    except web.HTTPException as exc:
        # Raised, not returned: aiohttp deprecates returning an HTTPException.
        _secure(exc.headers)
        raise
    except Exception:
        # A bug, not the caller's fault: log it (the formatter redacts) and answer without detail.
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = web.Response(status=500, text="internal error")
    _secure(response.headers)
    return response


def _secure(headers: MutableMapping[str, str]) -> None:
    for name, value in _SECURITY_HEADERS.items():
        headers.setdefault(name, value)


class TelegramWebhook:
    """Takes Telegram's deliveries: checks the secret, acknowledges at once and leaves the work to
    PTB's Application through its update queue.

    Each update_id is claimed in the database first, so a redelivery (to this replica or another)
    is acknowledged without being processed again. The claim comes before processing: an update
    is handled at most once, and a process that dies after acknowledging loses that one update
    rather than repeating it.
    """

    def __init__(
        self, *, secret: str, bot: Bot, queue: asyncio.Queue[object], db: Database
    ) -> None:
        self._secret = secret.encode("ascii")
        self._bot = bot
        self._queue = queue
        self._db = db
        self._accepting = True
        self._in_flight = 0
        self._drained = asyncio.Event()
        self._drained.set()

    async def close(self) -> None:
        """Refuse further deliveries (Telegram retries them, maybe at another replica) and wait
        until the ones being accepted are on the queue, so stopping the Application handles them."""
        self._accepting = False
        await self._drained.wait()

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, self._secret):
            # Not Telegram: the body is not even read.
            raise web.HTTPForbidden(text="forbidden")
        if not self._accepting:
            # Shutting down; a non-2xx answer makes Telegram deliver it again later.
            raise web.HTTPServiceUnavailable(text="shutting down", headers={"Retry-After": "1"})
        self._in_flight += 1
        self._drained.clear()
        try:
            return await self._accept(request)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._drained.set()

    async def _accept(self, request: web.Request) -> web.Response:
        body = await _read_body(request, MAX_UPDATE_BYTES)
        update = self._parse(body)
        if update is None:
            raise web.HTTPBadRequest(text="not an update")
        try:
            first = await self._db.updates.claim_update(update.update_id)
        except Exception as exc:
            log.warning("cannot claim update %s: %s", update.update_id, type(exc).__name__)
            raise web.HTTPServiceUnavailable(text="try again") from None
        if first:
            self._queue.put_nowait(update)
        else:
            log.info("update %s delivered again; already taken", update.update_id)
        return web.Response(text="ok")

    def _parse(self, body: bytes) -> Update | None:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
            return None
        if not isinstance(data, dict):
            return None
        update_id = data.get("update_id")
        if type(update_id) is not int or not 0 <= update_id <= _MAX_UPDATE_ID:
            return None
        try:
            update = Update.de_json(data, self._bot)
        except Exception:
            # PTB's own webhook answers 400 here too; what failed may quote the body, so only
            # the id is logged.
            log.warning("update %s could not be read", update_id)
            return None
        return update


class MetaCallbacks:
    """Meta's deauthorize and data deletion callbacks, and the deletion status page. A request
    whose signed_request is not Meta's (for our app) gets 4xx and changes nothing."""

    def __init__(self, privacy: PrivacyService, default_language: Language) -> None:
        self._privacy = privacy
        self._default: Language = default_language

    async def deauthorize(self, request: web.Request) -> web.Response:
        signed = await self._verified(request)
        await self._privacy.deauthorize(signed.user_id)
        return web.json_response({"status": "ok"})

    async def data_deletion(self, request: web.Request) -> web.Response:
        signed = await self._verified(request)
        receipt = await self._privacy.delete_data(signed.user_id, signed.issued_at)
        return web.json_response(
            {"url": receipt.url, "confirmation_code": receipt.confirmation_code}
        )

    async def deletion_status(self, request: web.Request) -> web.Response:
        t = Texts(from_accept_language(request.headers.get("Accept-Language"), self._default))
        found = await self._privacy.deletion_status(request.match_info["code"])
        if found is None:
            # Never echoes the code it was asked about.
            return _html(
                404,
                render_text(
                    t, title_key="privacy.status.title", message_keys=["privacy.status.unknown"]
                ),
            )
        when = found.completed_at or found.created_at
        return _html(
            200,
            render_text(
                t,
                title_key="privacy.status.title",
                message_keys=[f"privacy.status.{found.status}", "privacy.status.code"],
                date=when.strftime("%Y-%m-%d %H:%M UTC"),
                code=found.confirmation_code,
                connections=found.deleted_connections,
            ),
        )

    async def _verified(self, request: web.Request) -> SignedRequest:
        content_type = request.headers.get("Content-Type")
        if content_type is not None and request.content_type != _FORM:
            raise web.HTTPUnsupportedMediaType(text="expected a form")
        body = await _read_body(request, MAX_META_FORM_BYTES)
        try:
            pairs = parse_qsl(
                body.decode("ascii"), keep_blank_values=True, max_num_fields=_MAX_META_FORM_FIELDS
            )
        except ValueError:  # not ASCII, or too many fields
            raise web.HTTPBadRequest(text="malformed form") from None
        values = [value for key, value in pairs if key == "signed_request"]
        if len(values) != 1:
            raise web.HTTPBadRequest(text="expected one signed_request")
        signed = self._privacy.verify(values[0])
        if signed is SignatureProblem.BAD_SIGNATURE:
            log.warning("Meta callback refused: %s", signed.value)
            raise web.HTTPForbidden(text="bad signature")
        if isinstance(signed, SignatureProblem):
            log.warning("Meta callback refused: %s", signed.value)
            raise web.HTTPBadRequest(text=f"signed_request {signed.value}")
        return signed


def make_app(
    *,
    connect: ConnectService,
    db: Database,
    default_language: Language,
    bot_link: Callable[[], str | None],
    webhook: TelegramWebhook | None = None,
    privacy: PrivacyService | None = None,
    login_ttl_seconds: int = 30 * 60,
    secure_cookie: bool = False,
    metrics: Metrics | None = None,
    read_api: ReadApi | None = None,
) -> web.Application:
    """`bot_link` gives https://t.me/<bot username> once the bot knows its name; `webhook`, when
    given, is served at WEBHOOK_PATH; `privacy`, when given, serves Meta's callbacks; `read_api`,
    when given, serves the platform's read API under /api/v1/."""
    app = web.Application(middlewares=[security_headers], client_max_size=MAX_BODY_BYTES)

    def answer(request: web.Request, result: RedirectResult) -> web.Response:
        fallback = from_accept_language(request.headers.get("Accept-Language"), default_language)
        t = Texts(result.language or fallback)
        if result.confirm_token is not None:
            page = render_confirm(
                t,
                handle=result.handle or "",
                brand=result.brand or "",
                action=CONFIRM_PATH,
                token=result.confirm_token,
            )
            response = _html(result.http_status, page)
            # The one page with a form: it may post to us, nowhere else.
            response.headers["Content-Security-Policy"] = _CONFIRM_CSP
            return response
        return _page(t, result.http_status, result.page, bot_link(), username=result.username or "")

    async def oauth_start(request: web.Request) -> web.Response:
        params = _redirect_params(request.query)
        if params is None:
            return answer(request, RedirectResult(400, "bad_request"))
        started = await connect.start(params, browser=request.cookies.get(LOGIN_COOKIE))
        if started.page is not None or started.location is None or started.cookie is None:
            return answer(request, started.page or RedirectResult(400, "bad_request"))
        response = web.Response(status=302, headers={"Location": started.location})
        response.set_cookie(
            LOGIN_COOKIE,
            started.cookie,
            max_age=login_ttl_seconds,
            path="/oauth",
            httponly=True,
            samesite="Lax",
            secure=secure_cookie,
        )
        return response

    async def redirected(request: web.Request, path: LoginPath) -> web.Response:
        params = _redirect_params(request.query)
        if params is None:
            return answer(request, RedirectResult(400, "bad_request"))
        browser = request.cookies.get(LOGIN_COOKIE)
        arrived = time.monotonic()
        result = await connect.handle_redirect(params, browser=browser, path=path)
        if metrics is not None:
            metrics.callback_answered(result.page, time.monotonic() - arrived)
        return answer(request, result)

    async def oauth_callback(request: web.Request) -> web.Response:
        return await redirected(request, LoginPath.FACEBOOK)

    async def oauth_instagram(request: web.Request) -> web.Response:
        return await redirected(request, LoginPath.INSTAGRAM)

    async def oauth_confirm(request: web.Request) -> web.Response:
        body = await _read_body(request, MAX_CONFIRM_BYTES)
        try:
            pairs = parse_qsl(body.decode("ascii"), max_num_fields=4)
        except ValueError:
            pairs = []
        tokens = [value for key, value in pairs if key == "t"]
        if len(tokens) != 1:
            return answer(request, RedirectResult(400, "bad_request"))
        arrived = time.monotonic()
        result = await connect.confirm(tokens[0])
        if metrics is not None and result.page != "confirm":
            # The login finished here (a redirect that came back to another browser).
            metrics.callback_answered(result.page, time.monotonic() - arrived)
        return answer(request, result)

    async def healthz(request: web.Request) -> web.Response:
        ok = await db.ping()
        return web.json_response(
            {"status": "ok" if ok else "degraded", "database": ok}, status=200 if ok else 503
        )

    app.router.add_get(CALLBACK_PATH, oauth_callback)
    # Always served: a state is refused there unless it was handed out for Instagram Login.
    app.router.add_get(INSTAGRAM_CALLBACK_PATH, oauth_instagram)
    app.router.add_get(START_PATH, oauth_start)
    app.router.add_post(CONFIRM_PATH, oauth_confirm)
    app.router.add_get("/healthz", healthz)
    if webhook is not None:
        app.router.add_post(WEBHOOK_PATH, webhook.handle)
    if privacy is not None:
        meta = MetaCallbacks(privacy, default_language)
        app.router.add_post(DEAUTHORIZE_PATH, meta.deauthorize)
        app.router.add_post(DATA_DELETION_PATH, meta.data_deletion)
        app.router.add_get(STATUS_PATH + "{code}", meta.deletion_status)
    if read_api is not None:
        read_api.add_to(app)
    return app


def _redirect_params(query: Mapping[str, str]) -> dict[str, str] | None:
    """The query as a plain dict, or None when no real redirect could look like this: a redirect
    parameter twice, or text that is not valid Unicode or carries NUL (which PostgreSQL refuses)."""
    params: dict[str, str] = {}
    for key, value in query.items():
        if key in params and key in _SINGLE_KEYS:
            return None
        if "\x00" in value or not _is_utf8(key) or not _is_utf8(value):
            return None
        params[key] = value
    return params


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from undecodable bytes
        return False
    return True


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return bytes(body)


def _page(t: Texts, status: int, key: str, bot_link: str | None, **values: object) -> web.Response:
    return _html(status, render(t, message_key=key, bot_link=bot_link, **values))


def _html(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/html", charset="utf-8")
