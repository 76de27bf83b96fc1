"""The one module that talks to Facebook's Graph API.

It gathers the evidence `bot.verdict.decide` needs and never decides anything itself. Tokens travel
in query parameters as the Graph API expects; they never appear in exceptions or log lines
(aiohttp's client logs no requests, and an exception is reduced to its type), and every call made
with a user token carries `appsecret_proof`.

The HTTP client is aiohttp's (the library the callback server runs on): per request it costs about
a quarter of the CPU time httpx does, and a callback makes five of them (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import aiohttp

from bot.health import GraphProblem, ProblemKind, classify_error, classify_graph_error
from bot.verdict import FetchFailure, LoginEvidence

log = logging.getLogger(__name__)

# The linked account's follower count comes with the Page (field expansion), so the message
# about a connection needs no read of its own; so does the Page's access token, kept (sealed)
# with the connection for its health checks.
PAGE_FIELDS = (
    "id,name,is_published,tasks,access_token,"
    "instagram_business_account{id,username,followers_count},"
    "connected_instagram_account{id,username}"
)
# Facebook's default page size is 25; a person rarely has more Pages than that, but the paging
# must still be followed. The bound stops a looping `next` from spinning forever.
_MAX_PAGES_FETCHED = 50


class GraphError(Exception):
    """A Graph API error, safe to log: it carries codes and Meta's message, never a token."""

    def __init__(
        self, *, code: int | None, subcode: int | None, http_status: int | None, message: str
    ):
        super().__init__(
            f"Graph error code={code} subcode={subcode} status={http_status}: {message}"
        )
        self.code = code
        self.subcode = subcode
        self.http_status = http_status

    @property
    def failure(self) -> FetchFailure:
        return FetchFailure.from_graph_error(self.code, self.http_status)


@dataclass(frozen=True)
class Exchange:
    access_token: str
    expires_in: int | None


@dataclass(frozen=True)
class Gathered:
    """What one login produced: the evidence for the verdict, and the token to keep."""

    evidence: LoginEvidence
    token: str | None


class GraphClient:
    def __init__(
        self,
        *,
        base_url: str,
        version: str,
        app_id: str,
        app_secret: str,
        timeout: float = 10.0,
        max_concurrent_logins: int = 12,
    ) -> None:
        self._base = f"{base_url.rstrip('/')}/{version}"
        self._app_id = app_id
        self._app_secret = app_secret
        # Waiting for a connection and for each read of the answer: at most this long.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        # Each login verified makes up to three reads at once (`gather`); a few connections more
        # for the periodic checks. All of them are kept alive: a new TLS connection per request
        # would cost more than the request.
        self._connections = _READS_AT_ONCE * max_concurrent_logins + 4
        self._http: aiohttp.ClientSession | None = None  # made in the event loop, on first use

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = meta_session(self._timeout, self._connections)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def appsecret_proof(self, token: str) -> str:
        return hmac.new(self._app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()

    # --- low level ---------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path_or_url: str,
        params: Mapping[str, str],
        *,
        user_token: str | None = None,
    ) -> dict[str, Any]:
        query = dict(params)
        if user_token is not None:
            query["access_token"] = user_token
            query["appsecret_proof"] = self.appsecret_proof(user_token)
        url = path_or_url if path_or_url.startswith("http") else f"{self._base}{path_or_url}"
        status, body = await self._send(method, url, params=query)
        if status >= 400 or not isinstance(body, dict) or "error" in body:
            raise _graph_error(status, body)
        return body

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One request: the status and the JSON body (None when it is not JSON). A request that
        got no answer raises GraphError with only the exception's type: its text may contain
        the URL with a token."""
        try:
            async with self._session().request(method, url, params=params, data=data) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise GraphError(
                code=None, subcode=None, http_status=None, message=type(exc).__name__
            ) from None
        try:
            return status, json.loads(raw)
        except ValueError:  # not JSON, or not UTF-8
            return status, None

    # --- the login -------------------------------------------------------------------------

    async def exchange_code(self, *, code: str, redirect_uri: str) -> Exchange:
        """A code is single use: this is called exactly once per code, never retried."""
        body = await self._call(
            "GET",
            "/oauth/access_token",
            {
                "client_id": self._app_id,
                "client_secret": self._app_secret,
                "redirect_uri": redirect_uri,
                "code": code,
            },
        )
        return Exchange(str(body["access_token"]), _int(body.get("expires_in")))

    async def long_lived(self, short_token: str) -> Exchange:
        body = await self._call(
            "GET",
            "/oauth/access_token",
            {
                "grant_type": "fb_exchange_token",
                "client_id": self._app_id,
                "client_secret": self._app_secret,
                "fb_exchange_token": short_token,
            },
        )
        return Exchange(str(body["access_token"]), _int(body.get("expires_in")))

    async def debug_token(self, token: str) -> dict[str, Any]:
        body = await self._call(
            "GET",
            "/debug_token",
            {"input_token": token, "access_token": f"{self._app_id}|{self._app_secret}"},
        )
        data = body.get("data")
        return data if isinstance(data, dict) else {}

    async def debug_tokens(
        self,
        tokens: Sequence[str],
        *,
        before_batch: Callable[[int], Awaitable[None]] | None = None,
    ) -> list[dict[str, Any] | GraphProblem]:
        """`debug_token` of each token, in order, through Graph's batch API: one POST per
        `BATCH_MAX` tokens, with the app token (each request in a batch still counts as a call
        against the rate limits). Each result is debug_token's ``data``, or the problem of its
        request (one that did not complete: transient). `before_batch` is awaited with the
        number of requests before each POST (the health check's pace). Raises GraphError when
        a batch POST itself fails (nothing is known about any of its tokens then)."""
        results: list[dict[str, Any] | GraphProblem] = []
        for start in range(0, len(tokens), BATCH_MAX):
            chunk = tokens[start : start + BATCH_MAX]
            if before_batch is not None:
                await before_batch(len(chunk))
            requests = [
                {"method": "GET", "relative_url": f"debug_token?{urlencode({'input_token': t})}"}
                for t in chunk
            ]
            answers = await self._batch(requests)
            for index in range(len(chunk)):
                answer = answers[index] if index < len(answers) else None
                results.append(_debug_entry(answer))
        return results

    async def _batch(self, requests: list[dict[str, str]]) -> list[Any]:
        """One POST to Graph's batch API with the app token (in the form body, never in the
        URL); the answer array. Raises GraphError."""
        form = {
            "batch": json.dumps(requests, separators=(",", ":")),
            "access_token": f"{self._app_id}|{self._app_secret}",
        }
        status, body = await self._send("POST", f"{self._base}/", data=form)
        if status >= 400 or not isinstance(body, list):
            raise _graph_error(status, body)
        return body

    async def permissions(self, token: str) -> list[dict[str, Any]]:
        body = await self._call("GET", "/me/permissions", {}, user_token=token)
        return [p for p in body.get("data") or [] if isinstance(p, dict)]

    async def pages(self, token: str) -> list[dict[str, Any]]:
        pages: list[dict[str, Any]] = []
        body = await self._call(
            "GET", "/me/accounts", {"fields": PAGE_FIELDS, "limit": "100"}, user_token=token
        )
        for _ in range(_MAX_PAGES_FETCHED):
            pages.extend(p for p in body.get("data") or [] if isinstance(p, dict))
            paging = body.get("paging")
            next_url = paging.get("next") if isinstance(paging, dict) else None
            if not isinstance(next_url, str) or not next_url.startswith(self._base):
                # Only ever follow links back to the Graph host we were configured with.
                break
            # `next` carries the old access_token; send ours (with its proof) instead.
            parsed = urlsplit(next_url)
            params: dict[str, str] = {}
            for key, value in parse_qsl(parsed.query, keep_blank_values=True):
                if key not in _TOKEN_PARAMS:
                    params.setdefault(key, value)
            bare = urlunsplit((parsed.scheme, parsed.netloc, parsed.path, "", ""))
            body = await self._call("GET", bare, params, user_token=token)
        return pages

    async def revoke(self, token: str) -> None:
        await self._call("DELETE", "/me/permissions", {}, user_token=token)

    # --- a kept connection's health check (`bot.upkeep`) ---------------------------------------

    async def read_node(self, node_id: str, *, fields: str, token: str) -> dict[str, Any]:
        """One node (the connected Page with its Page token, or the Instagram account), with
        `fields`. Raises GraphError."""
        return await self._call(
            "GET", f"/{quote(node_id, safe='')}", {"fields": fields}, user_token=token
        )

    async def read(self, path: str, params: Mapping[str, str], *, token: str) -> dict[str, Any]:
        """Any read, e.g. an Instagram account's insights (`bot.profiles`). Raises GraphError."""
        return await self._call("GET", path, params, user_token=token)

    async def picture(self, url: str, *, max_bytes: int = 2_000_000) -> bytes | None:
        """A profile picture from the address Graph gave (it expires within days, so it is
        fetched with the figures, never stored); None when it cannot be had."""
        return await download_picture(self._session(), url, max_bytes=max_bytes)

    async def find_page(
        self,
        token: str,
        page_id: str,
        *,
        fields: str,
        before_call: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any] | None:
        """The Page `page_id` as /me/accounts lists it for the user token (None: not listed any
        more), following the paging only until it is found. `before_call` is awaited before
        each request (the health check's pace). Raises GraphError."""
        url, params = "/me/accounts", {"fields": fields, "limit": "100"}
        for _ in range(_MAX_PAGES_FETCHED):
            if before_call is not None:
                await before_call()
            body = await self._call("GET", url, params, user_token=token)
            for page in body.get("data") or []:
                if isinstance(page, dict) and str(page.get("id")) == page_id:
                    return page
            paging = body.get("paging")
            next_url = paging.get("next") if isinstance(paging, dict) else None
            if not isinstance(next_url, str) or not next_url.startswith(self._base):
                return None
            parsed = urlsplit(next_url)
            params = {}
            for key, value in parse_qsl(parsed.query, keep_blank_values=True):
                if key not in _TOKEN_PARAMS:
                    params.setdefault(key, value)
            url = urlunsplit((parsed.scheme, parsed.netloc, parsed.path, "", ""))
        return None

    async def gather(self, *, redirect: Mapping[str, str], redirect_uri: str) -> Gathered:
        """Everything Facebook can tell about one redirect. A Graph failure is part of the
        evidence (so the verdict says "try again later"), not an exception."""
        code = redirect.get("code")
        if redirect.get("error") or not code:
            return Gathered(LoginEvidence(redirect=redirect), None)
        try:
            short = await self.exchange_code(code=code, redirect_uri=redirect_uri)
        except GraphError as exc:
            log.warning("code exchange failed: %s", exc)
            failure = exc.failure
            return Gathered(LoginEvidence(redirect=redirect, fetch_failure=failure), None)
        token = short.access_token
        try:
            token = (await self.long_lived(token)).access_token
            # Independent reads: at the same time. Every one is awaited to its end, and the first
            # failure in this order is the one reported.
            debug, permissions, pages = await asyncio.gather(
                self.debug_token(token),
                self.permissions(token),
                self.pages(token),
                return_exceptions=True,
            )
            if isinstance(debug, BaseException):
                raise debug
            if isinstance(permissions, BaseException):
                raise permissions
            if isinstance(pages, BaseException):
                raise pages
        except GraphError as exc:
            log.warning("verification failed: %s", exc)
            # The code is spent; report what kind of failure it was.
            failure = exc.failure
            if failure is FetchFailure.CODE_REJECTED:
                failure = FetchFailure.UNAVAILABLE
            return Gathered(LoginEvidence(redirect=redirect, fetch_failure=failure), token)
        return Gathered(
            LoginEvidence(redirect=redirect, debug=debug, permissions=permissions, pages=pages),
            token,
        )


_READS_AT_ONCE = 3  # debug_token, /me/permissions, /me/accounts


def meta_session(timeout: aiohttp.ClientTimeout, connections: int) -> aiohttp.ClientSession:
    """The HTTP session for Meta's hosts (Graph here, Instagram's in `bot.instagram_login`):
    kept-alive connections, no cookies, and nothing sent twice."""
    session = aiohttp.ClientSession(
        timeout=timeout,
        connector=aiohttp.TCPConnector(limit=connections, limit_per_host=0),
        headers={"User-Agent": "connect-bot"},
        # Our own answers only: no cookies kept between requests.
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    # aiohttp sends an idempotent request (GET, DELETE) again when its connection drops
    # before the answer; a code is single use and must never be sent twice
    # (`exchange_code`), so nothing is retried (as with httpx before; aiohttp's own test
    # client turns it off the same way, there being no public setting).
    session._retry_connection = False
    return session


async def download_picture(
    session: aiohttp.ClientSession, url: str, *, max_bytes: int
) -> bytes | None:
    """A profile picture from the (expiring, signed) address Meta gave; None when it cannot be
    had: not http(s), a redirect or error, too large, or no answer."""
    if not url.startswith(("https://", "http://")):
        return None
    try:
        async with session.get(url, allow_redirects=False) as response:
            if response.status != _HTTP_OK:
                return None
            body = await response.content.read(max_bytes + 1)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    return body if 0 < len(body) <= max_bytes else None


def _graph_error(status: int, body: Any) -> GraphError:
    """A failed answer as GraphError, from Graph's envelope ``{"error": {...}}`` when there is
    one (the message cut short: it is Graph's text, not ours)."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    return GraphError(
        code=_int(error.get("code")),
        subcode=_int(error.get("error_subcode")),
        http_status=status,
        message=str(error.get("message") or "unexpected answer")[:200],
    )


# Requests in one call to Graph's batch API at most.
BATCH_MAX = 50
_HTTP_OK = 200


def _debug_entry(answer: object) -> dict[str, Any] | GraphProblem:
    """One entry of a batch answer to debug_token: its ``data``, or the problem. An entry is
    ``{"code", "headers"?, "body": "<JSON text>"}``, or null when the request did not complete."""
    if not isinstance(answer, dict):
        return GraphProblem(ProblemKind.TRANSIENT)
    status = _int(answer.get("code"))
    raw = answer.get("body")
    try:
        body = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        body = None
    if isinstance(body, dict) and status == _HTTP_OK and "error" not in body:
        data = body.get("data")
        if isinstance(data, dict):
            return data
    headers = {
        str(h.get("name")): str(h.get("value"))
        for h in answer.get("headers") or []
        if isinstance(h, dict)
    }
    return classify_graph_error(status, body, headers)


_TOKEN_PARAMS = frozenset({"access_token", "appsecret_proof", "appsecret_time"})


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None


def dialog_url(
    *,
    dialog_base: str,
    version: str,
    app_id: str,
    redirect_uri: str,
    state: str,
    scopes: tuple[str, ...],
    rerequest: bool,
    auth_type: str | None = None,
) -> str:
    """Facebook's login dialog. `rerequest` wins over another `auth_type` (the dialog takes one):
    without it, a declined permission is never asked again, whatever else the login is for;
    `auth_type="reauthorize"` renews data access that expires after 90 days."""
    params = {
        "client_id": app_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "scope": ",".join(scopes),
        "response_type": "code",
    }
    if rerequest:
        # Without it the dialog will not ask again for permissions the person declined.
        params["auth_type"] = "rerequest"
    elif auth_type:
        params["auth_type"] = auth_type
    return f"{dialog_base.rstrip('/')}/{version}/dialog/oauth?{urlencode(params)}"


def problem_of(error: GraphError) -> GraphProblem:
    """Sort a failed Graph call for the health check (meta-platform.md §7): token invalid by
    subcode, permission, rate limit, outage, ... See `bot.health.classify_error`."""
    return classify_error(
        code=error.code, subcode=error.subcode, http_status=error.http_status, message=str(error)
    )
