"""The one module that talks to Instagram for Instagram Login (the second Meta app, issue 13):
its authorization window (www.instagram.com), its token endpoint (api.instagram.com) and its
Graph host (graph.instagram.com).

It gathers the evidence `bot.instagram_verdict.decide` needs and never decides anything itself.
As in `bot.graph`: tokens, codes and the app secret never appear in exceptions or log lines (an
exception without an answer is reduced to its type, Instagram's own messages are cut short and
scrubbed of anything we sent), and nothing is sent twice (a code is single use). No
``appsecret_proof``: the Instagram host does not ask for one.

`read` and `picture` have `bot.graph.GraphClient`'s signatures, and `InstagramError` is a
`bot.graph.GraphError`, so `bot.profiles.read_profile` can read an account's figures on this path
as it does on the Facebook one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from bot.graph import GraphError, download_picture, meta_session
from bot.graph_json import as_id, as_int, as_text
from bot.health import GraphProblem, ProblemKind, classify_error
from bot.instagram_verdict import IgLoginEvidence, parse_permissions
from bot.verdict import HTTP_SERVER_ERROR, HTTP_TOO_MANY_REQUESTS, FetchFailure

log = logging.getLogger(__name__)

# What the login reads of the account (/me): who it is, whether it is professional, and the
# figures for the first message about the connection.
ME_FIELDS = "id,user_id,username,name,account_type,followers_count,media_count"
# "we append #_ to the end of the redirect URI, but it is not part of the code itself"
_CODE_SUFFIX = "#_"
_MESSAGE_MAX = 200


class InstagramError(GraphError):
    """A failed call to Instagram, safe to log: codes and Instagram's message, never a token.

    Two error shapes arrive. The Graph host's is Graph's envelope ``{"error": {"message",
    "code", "error_subcode", ...}}``. The token endpoint's is flat: ``{"error_type",
    "code": <the HTTP status again>, "error_message"}``; its ``code`` is no Graph error code, so
    it is kept apart (`token_endpoint` true, `code` None) and the failure is judged by the
    status."""

    def __init__(
        self,
        *,
        code: int | None,
        subcode: int | None,
        http_status: int | None,
        message: str,
        error_type: str | None = None,
        token_endpoint: bool = False,
    ) -> None:
        super().__init__(code=code, subcode=subcode, http_status=http_status, message=message)
        self.error_type = error_type
        self.token_endpoint = token_endpoint
        self.message = message

    @property
    def failure(self) -> FetchFailure:
        """For the login: Instagram in trouble, throttling, or the code refused for good."""
        if self.token_endpoint:
            status = self.http_status
            if status == HTTP_TOO_MANY_REQUESTS:
                return FetchFailure.RATE_LIMITED
            if status is None or status >= HTTP_SERVER_ERROR:
                return FetchFailure.UNAVAILABLE
            return FetchFailure.CODE_REJECTED
        problem = self.problem
        if problem.kind is ProblemKind.RATE_LIMITED:
            return FetchFailure.RATE_LIMITED
        if problem.kind is ProblemKind.TRANSIENT:
            return FetchFailure.UNAVAILABLE
        return FetchFailure.CODE_REJECTED

    @property
    def problem(self) -> GraphProblem:
        """For a kept connection's check or refresh, sorted as `bot.health.classify_error`
        sorts Graph's errors (190 by subcode, permissions, rate limits, outages)."""
        if self.token_endpoint:
            kind = {
                FetchFailure.RATE_LIMITED: ProblemKind.RATE_LIMITED,
                FetchFailure.UNAVAILABLE: ProblemKind.TRANSIENT,
            }.get(self.failure, ProblemKind.BAD_REQUEST)
            return GraphProblem(kind, http_status=self.http_status)
        return classify_error(
            code=self.code,
            subcode=self.subcode,
            http_status=self.http_status,
            message=self.message,
        )


@dataclass(frozen=True)
class IgExchange:
    """What the code exchange gave: a short-lived token (1 hour), the app-scoped user id (as a
    string, whichever shape) and the permissions granted."""

    access_token: str = field(repr=False)
    user_id: str | None
    permissions: tuple[str, ...]


@dataclass(frozen=True)
class IgAccessToken:
    """A user access token and its lifetime: long-lived ones live 60 days, also after each
    refresh (`IgGathered` may carry the exchange's short-lived one, `expires_in` None)."""

    access_token: str = field(repr=False)
    expires_in: int | None
    token_type: str | None = None


@dataclass(frozen=True)
class IgGathered:
    """What one login produced: the evidence for the verdict, and the token to keep (the
    long-lived one when it was had, else the short-lived one of the exchange; None when the
    code was never exchanged)."""

    evidence: IgLoginEvidence
    token: IgAccessToken | None = field(default=None, repr=False)


class InstagramClient:
    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        scopes: Iterable[str],
        authorize_url: str = "https://www.instagram.com",
        token_url: str = "https://api.instagram.com",
        graph_url: str = "https://graph.instagram.com",
        version: str | None = None,
        timeout: float = 10.0,
        max_connections: int = 40,
    ) -> None:
        self._app_id = app_id
        self._app_secret = app_secret
        self._scopes = tuple(scopes)
        self._authorize_base = authorize_url.rstrip("/")
        self._token_base = token_url.rstrip("/")
        self._graph_host = graph_url.rstrip("/")
        # Reads go to a versioned path when a version is given; the token exchange and refresh
        # live at the host's root, as Instagram documents them.
        self._graph_base = f"{self._graph_host}/{version}" if version else self._graph_host
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        self._connections = max_connections
        self._http: aiohttp.ClientSession | None = None  # made in the event loop, on first use

    def __repr__(self) -> str:  # the secret stays out of any repr
        return f"InstagramClient(app_id={self._app_id!r}, graph={self._graph_base!r})"

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = meta_session(self._timeout, self._connections)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- the login -------------------------------------------------------------------------

    def authorize_url(self, *, state: str, redirect_uri: str, force_reauth: bool = False) -> str:
        """Instagram's authorization window. `redirect_uri` must be exactly the one registered
        in the app and sent again with the exchange. `force_reauth` makes Instagram ask who is
        logging in even when someone is logged in to the browser (after a login with another
        account than the invited one)."""
        params = {
            "client_id": self._app_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": ",".join(self._scopes),
            "state": state,
        }
        if force_reauth:
            params["force_reauth"] = "true"
        return f"{self._authorize_base}/oauth/authorize?{urlencode(params)}"

    async def exchange_code(self, *, code: str, redirect_uri: str) -> IgExchange:
        """A code is single use: called exactly once per code, never retried. A trailing "#_"
        (Instagram's, when a URL was taken apart by hand) is not part of the code."""
        code = code.strip().removesuffix(_CODE_SUFFIX)
        form = {
            "client_id": self._app_id,
            "client_secret": self._app_secret,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
            "code": code,
        }
        url = f"{self._token_base}/oauth/access_token"
        status, body = await self._send("POST", url, data=form, sent=(code,))
        if status >= 400 or not isinstance(body, dict) or _is_error(body):
            raise _error(status, body, sent=(code,))
        # Business Login's page: {"data": [{...}]}; the endpoint's older reference: flat.
        data = body.get("data")
        entry = data[0] if isinstance(data, list) and data else body
        token = as_text(entry.get("access_token")) if isinstance(entry, dict) else None
        if token is None or not isinstance(entry, dict):
            raise _error(status, None)
        return IgExchange(
            access_token=token,
            user_id=as_id(entry.get("user_id")),
            permissions=parse_permissions(entry.get("permissions")),
        )

    async def long_lived(self, short_token: str) -> IgAccessToken:
        """The 60-day token for a short-lived one (``grant_type=ig_exchange_token``)."""
        return await self._token_call(
            "/access_token",
            {
                "grant_type": "ig_exchange_token",
                "client_secret": self._app_secret,
                "access_token": short_token,
            },
            short_token,
        )

    async def refresh(self, token: str) -> IgAccessToken:
        """A new 60-day token for a long-lived one at least 24 hours old and not expired
        (``grant_type=ig_refresh_token``). The old value keeps working until its own expiry.
        A refusal is an `InstagramError`: its `problem` says whether the token is gone (190
        by subcode) or only too young (a plain 100, try later)."""
        return await self._token_call(
            "/refresh_access_token",
            {"grant_type": "ig_refresh_token", "access_token": token},
            token,
        )

    async def me(self, token: str) -> dict[str, Any]:
        """``/me`` with `ME_FIELDS`, as Instagram answered it (untrusted: the verdict reads it
        with `bot.instagram_verdict.parse_account`)."""
        return await self.read("/me", {"fields": ME_FIELDS}, token=token)

    async def gather(self, *, redirect: Mapping[str, str], redirect_uri: str) -> IgGathered:
        """Everything Instagram can tell about one redirect: the code exchanged (once), the
        long-lived token, /me. A failure is part of the evidence (the verdict says what it
        means), not an exception."""
        code = redirect.get("code")
        if redirect.get("error") or not code:
            return IgGathered(IgLoginEvidence(redirect=redirect))
        try:
            short = await self.exchange_code(code=code, redirect_uri=redirect_uri)
        except InstagramError as exc:
            log.warning("instagram code exchange failed: %s", exc)
            return IgGathered(IgLoginEvidence(redirect=redirect, failure=exc.failure))
        token = IgAccessToken(short.access_token, expires_in=None)
        try:
            token = await self.long_lived(short.access_token)
            me = await self.me(token.access_token)
        except InstagramError as exc:
            log.warning("instagram verification failed: %s", exc)
            # The code is spent: whatever went wrong now, a new login is not what the person
            # did wrong, so a refusal reads as trouble at Instagram.
            failure = exc.failure
            if failure is FetchFailure.CODE_REJECTED:
                failure = FetchFailure.UNAVAILABLE
            evidence = IgLoginEvidence(
                redirect=redirect, failure=failure, granted=short.permissions
            )
            return IgGathered(evidence, token)
        evidence = IgLoginEvidence(redirect=redirect, granted=short.permissions, me=me)
        return IgGathered(evidence, token)

    # --- reads (bot.profiles) --------------------------------------------------------------

    async def read(self, path: str, params: Mapping[str, str], *, token: str) -> dict[str, Any]:
        """Any read on the Graph host (``/me``, ``/{id}/insights``, ``/{id}/media``, a media
        node), relative to the versioned base. Raises InstagramError."""
        query = dict(params)
        if path.startswith(("http://", "https://")):
            # A paging link Instagram gave: its query carries the token it was read with; ours
            # is sent instead, once.
            parts = urlsplit(path)
            for key, value in parse_qsl(parts.query, keep_blank_values=True):
                if key != "access_token":
                    query.setdefault(key, value)
            url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        else:
            url = f"{self._graph_base}/{path.lstrip('/')}"
        query["access_token"] = token
        if not url.startswith(self._graph_host + "/"):
            # Only ever send the token to the Graph host we were configured with.
            raise InstagramError(
                code=None, subcode=None, http_status=None, message="not the Instagram Graph host"
            )
        status, body = await self._send("GET", url, params=query, sent=(token,))
        if status >= 400 or not isinstance(body, dict) or _is_error(body):
            raise _error(status, body, sent=(token,))
        return body

    async def picture(self, url: str, *, max_bytes: int = 2_000_000) -> bytes | None:
        """A profile picture from the address Instagram gave (a signed CDN URL that expires
        within days: fetched with the figures, never stored); None when it cannot be had."""
        return await download_picture(self._session(), url, max_bytes=max_bytes)

    # --- low level -------------------------------------------------------------------------

    async def _token_call(self, path: str, params: Mapping[str, str], token: str) -> IgAccessToken:
        sent = (token, self._app_secret)
        status, body = await self._send(
            "GET", f"{self._graph_host}{path}", params=params, sent=sent
        )
        if status >= 400 or not isinstance(body, dict) or _is_error(body):
            raise _error(status, body, sent=sent)
        value = as_text(body.get("access_token"))
        if value is None:
            raise _error(status, None)
        token_type = body.get("token_type")
        return IgAccessToken(
            value,
            expires_in=as_int(body.get("expires_in")),
            token_type=token_type if isinstance(token_type, str) else None,
        )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        sent: tuple[str, ...] = (),
    ) -> tuple[int, Any]:
        """One request: the status and the JSON body (None when it is not JSON). A request that
        got no answer raises InstagramError with only the exception's type: its text may hold
        the URL with a token."""
        try:
            async with self._session().request(method, url, params=params, data=data) as response:
                status = response.status
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise InstagramError(
                code=None, subcode=None, http_status=None, message=type(exc).__name__
            ) from None
        try:
            return status, json.loads(raw)
        except ValueError:  # not JSON, or not UTF-8
            return status, None


def _is_error(body: Mapping[str, Any]) -> bool:
    return "error" in body or "error_message" in body or "error_type" in body


def _error(status: int, body: Any, *, sent: tuple[str, ...] = ()) -> InstagramError:
    """A failed answer as InstagramError, from either of Instagram's error shapes."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return InstagramError(
            code=as_int(error.get("code")),
            subcode=as_int(error.get("error_subcode")),
            http_status=status,
            message=_safe_message(error.get("message"), sent),
            error_type=as_text(error.get("type")),
        )
    if isinstance(body, dict) and ("error_message" in body or "error_type" in body):
        return InstagramError(
            code=None,
            subcode=None,
            http_status=status,
            message=_safe_message(body.get("error_message"), sent),
            error_type=as_text(body.get("error_type")),
            token_endpoint=True,
        )
    return InstagramError(code=None, subcode=None, http_status=status, message="unexpected answer")


def _safe_message(raw: Any, sent: tuple[str, ...]) -> str:
    """Instagram's text, cut short, with anything secret we sent taken out (an error may quote
    a parameter back)."""
    message = str(raw) if isinstance(raw, str | int) and str(raw).strip() else "no message"
    for value in sent:
        if value:
            message = message.replace(value, "[redacted]")
    return message[:_MESSAGE_MAX]
