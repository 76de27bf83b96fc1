"""The stand-in itself: one aiohttp app playing Instagram's authorization window
(www.instagram.com), its token endpoint (api.instagram.com) and its Graph host
(graph.instagram.com), with the tokens, the clock and the faults tests and the playground drive.
The insight, demographics and media answers are sandbox/facebook/instagram.py's, reused."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web

from sandbox.facebook.errors import (
    APP_REMOVED,
    PASSWORD_CHANGED,
    GraphError,
    invalid_token,
    nonexisting_field,
    service_unavailable,
    unsupported_get,
)
from sandbox.facebook.fields import cursor_for, cursor_index, facebook_time, parse_fields
from sandbox.facebook.instagram import (
    MEDIA_PAGE_MAX,
    MEDIA_PAGE_SIZE,
    Demographics,
    InstagramData,
    Post,
    day_number,
    default_posts,
    media_insights,
    png,
    render_media,
    user_insights,
)
from sandbox.facebook.limits import CallKeys, RateLimits
from sandbox.facebook.standin import _error_body
from sandbox.facebook.state import Fault, FaultT, InjectedError

from .page import consent_page, person_from_form
from .people import BASIC_SCOPE, INSIGHTS_SCOPE, SCOPES, AccountType, IgConsent, IgPerson
from .state import (
    CODE_SECONDS,
    LONG_LIVED_SECONDS,
    REFRESH_MIN_AGE_SECONDS,
    SHORT_LIVED_SECONDS,
    Account,
    AuthorizeError,
    Code,
    ExchangeShape,
    IgToken,
    JsonDict,
    TokenEndpointError,
    TokenKind,
)

_VERSION_RE = re.compile(r"v\d+\.\d+")
T = TypeVar("T")

# Fields of the Instagram User node on graph.instagram.com (Instagram Login).
USER_FIELDS = frozenset(
    {
        "id",
        "user_id",
        "username",
        "name",
        "account_type",
        "profile_picture_url",
        "followers_count",
        "follows_count",
        "media_count",
        "biography",
        "website",
    }
)
_NO_PERMISSION = "(#10) Application does not have permission for this action"


class InstagramStandin:
    """Instagram's authorization window, token endpoint and Graph host for one Meta app with
    Instagram Login. All three answer on ``base_url``: point the authorize, token and Graph base
    URLs at it."""

    def __init__(
        self,
        *,
        app_id: str = "9876543210",
        app_secret: str = "test-instagram-app-secret",
        version: str = "v25.0",
        app_name: str = "Connect Bot",
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.version = version
        self.app_name = app_name

        # The answer shape of the code exchange (both are documented; the bot must take both).
        self.exchange_shape = ExchangeShape.DATA
        # The app's "Valid OAuth redirect URIs"; None accepts any redirect_uri.
        self.valid_redirect_uris: list[str] | None = None
        # Show the HTML consent page even when a person is scripted (the playground); without a
        # scripted person the page is always shown.
        self.consent_page = False
        self.code_lifetime = float(CODE_SECONDS)
        self.latency = 0.0  # seconds added to every answer of the Graph host

        self.requests: list[tuple[str, str, JsonDict]] = []
        self.authorize_requests: list[JsonDict] = []
        self.internal_errors: list[BaseException] = []

        self._runner: web.AppRunner | None = None
        self._port = 0
        self._current: str | None = None  # id of the account logged in to the browser
        self._accounts: dict[str, Account] = {}
        self._codes: dict[str, Code] = {}
        self._tokens: dict[str, IgToken] = {}
        self._network_faults: list[Fault] = []
        self._injected: list[InjectedError] = []
        self.clock_offset = 0.0
        self.limits = RateLimits()
        self.outage = False
        self._instagram: dict[str, InstagramData] = {}  # by IgPerson.user_id
        self._media_owners: dict[str, str] = {}  # media id -> IgPerson.id

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- scripting ------------------------------------------------------------------------------

    def set_person(self, person: IgPerson, consent: IgConsent | None = None) -> None:
        """Who is logged in to Instagram in the browser, and what they will do in the window.
        The stand-in keeps its own copy of ``person``; the same ``id`` keeps its grant, tokens
        and figures."""
        account = self._accounts.get(person.id)
        if account is None:
            account = self._accounts[person.id] = Account(replace(person), consent or IgConsent())
        account.person = replace(person)
        account.consent = consent or IgConsent()
        self._current = person.id

    def log_out_browser(self) -> None:
        """Nobody is logged in to Instagram in the browser: the authorize URL shows the page."""
        self._current = None

    def fail_next(
        self,
        path_contains: str,
        *,
        code: int,
        message: str,
        http_status: int | None = None,
        subcode: int | None = None,
        count: int = 1,
        error_type: str = "OAuthException",
    ) -> None:
        """The next ``count`` calls whose path contains ``path_contains`` fail with this error
        (Graph's envelope; on /oauth/access_token the token endpoint's flat shape with the HTTP
        status as ``code``). HTTP status defaults to 500 for codes 1 and 2, else 400."""
        status = http_status if http_status is not None else (500 if code in (1, 2) else 400)
        error = GraphError(
            code, message, error_type=error_type, subcode=subcode, http_status=status
        )
        self._injected.append(InjectedError(path_contains, count, error))

    def fail_network(self, path_contains: str, count: int = 1) -> None:
        """The next ``count`` requests whose path contains it get the connection closed on them."""
        self._network_faults.append(Fault(path_contains, count))

    def now(self) -> float:
        """The stand-in's clock: real time plus ``clock_offset`` (codes, tokens, rate limits)."""
        return time.time() + self.clock_offset

    def fast_forward(self, *, days: float = 0, seconds: float = 0) -> None:
        self.clock_offset += days * 86400 + seconds

    def expire_token(self, value: str) -> None:
        """This token has run out (error 190, subcode 463)."""
        self._token(value).expires_at = int(self.now()) - 1

    def expire_tokens(self, account: str) -> None:
        """Every token of this account (``IgPerson.id`` or ``user_id``) has run out."""
        for token in self._tokens_of(account):
            token.expires_at = int(self.now()) - 1

    def revoke(self, account: str) -> None:
        """The person removes the app in Instagram's settings (Apps and websites): every token
        fails with 190/458 and the grant is forgotten. Instagram Login sends no deauthorize
        callback to this stand-in's apps; the bot learns it from these errors."""
        record = self._account(account)
        record.scopes.clear()
        for token in self._tokens_of(account):
            token.invalid = invalid_token(APP_REMOVED, self.app_id)

    def change_password(self, account: str) -> None:
        """The person changes their password: every token fails with 190/460."""
        for token in self._tokens_of(account):
            token.invalid = invalid_token(PASSWORD_CHANGED, self.app_id)

    def remove_permission(self, account: str, scope: str) -> None:
        """The person takes one permission back: calls needing it answer code 10."""
        record = self._account(account)
        if scope not in record.scopes:
            raise ValueError(f"{scope} is not granted")
        record.scopes.remove(scope)

    def set_outage(self, down: bool = True) -> None:
        """Instagram is down: the token endpoint and every Graph call answer 500 (code 2 on the
        Graph host); the authorization window still opens."""
        self.outage = down

    def set_rate_limits(
        self,
        *,
        app_per_hour: int | None = None,
        user_per_hour: int | None = None,
        instagram_per_hour: int | None = None,
    ) -> None:
        """Graph calls allowed per sliding hour (None: unlimited): the app (error 4), per token
        holder (17), per Instagram account (80002), with the usage headers."""
        self.limits.app_per_hour = app_per_hour
        self.limits.user_per_hour = user_per_hour
        self.limits.instagram_per_hour = instagram_per_hour

    # -- the account's figures ------------------------------------------------------------------

    def set_profile(
        self,
        account: str,
        *,
        username: str | None = None,
        account_type: AccountType | None = None,
        followers: int | None = None,
        follows: int | None = None,
        media_count: int | None = None,
        name: str | None = None,
        biography: str | None = None,
        website: str | None = None,
    ) -> None:
        """Change what ``/me`` shows for this account (the ids stay)."""
        record = self._account(account)
        changes: dict[str, Any] = {
            key: value
            for key, value in {
                "username": username,
                "account_type": account_type,
                "followers_count": followers,
                "follows_count": follows,
                "media_count": media_count,
                "name": name,
                "biography": biography,
                "website": website,
            }.items()
            if value is not None
        }
        record.person = replace(record.person, **changes)

    def set_insights(
        self,
        account: str,
        *,
        reach: list[int] | None = None,
        views: list[int] | None = None,
        accounts_engaged: list[int] | None = None,
        total_interactions: list[int] | None = None,
    ) -> None:
        """Day values, oldest first, the last one the last complete Instagram day (as
        GraphStandin.set_insights)."""
        data = self.instagram_data(account)
        last = day_number(self.now())
        given = {
            "reach": reach,
            "views": views,
            "accounts_engaged": accounts_engaged,
            "total_interactions": total_interactions,
        }
        for metric, values in given.items():
            if values is not None:
                first = last - len(values) + 1
                data.series[metric] = {first + i: v for i, v in enumerate(values)}
        data.no_data = False

    def set_demographics(self, account: str, demographics: Demographics | None) -> None:
        data = self.instagram_data(account)
        data.demographics = demographics
        data.demographics_set = True

    def set_posts(self, account: str, posts: list[Post]) -> None:
        record = self._account(account)
        self.instagram_data(account).posts = list(posts)
        self._media_owners.update({post.id: record.person.id for post in posts})

    def set_new_account(self, account: str) -> None:
        """A brand-new account: no posts, every insight answers ``data: []``."""
        data = self.instagram_data(account)
        data.no_data = True
        data.series.clear()
        data.posts = []
        data.demographics = None
        data.demographics_set = True

    def instagram_data(self, account: str) -> InstagramData:
        """The account's insight series, demographics and posts (seeded defaults until set)."""
        person = self._account(account).person
        data = self._instagram.get(person.user_id)
        if data is None:
            data = self._instagram[person.user_id] = InstagramData(seed=person.user_id)
        if data.posts is None:
            count = min(6, person.media_count)
            data.posts = default_posts(person.user_id, person.followers_count, count, self.now())
            self._media_owners.update({post.id: person.id for post in data.posts})
        return data

    # -- looking in -----------------------------------------------------------------------------

    def person(self, account: str) -> IgPerson:
        """The stand-in's current copy of the account's person."""
        return self._account(account).person

    def granted(self, account: str) -> list[str]:
        """The scopes this account has granted the app (empty before a login or after removal)."""
        return list(self._account(account).scopes)

    def token_info(self, value: str) -> IgToken:
        return self._token(value)

    def issued_tokens(self) -> list[str]:
        return list(self._tokens)

    def issued_codes(self) -> list[str]:
        return list(self._codes)

    def complete_authorize(
        self, query: Mapping[str, str], person: IgPerson, consent: IgConsent
    ) -> str:
        """``person`` finishes the window opened with ``query`` by doing ``consent``; returns the
        URL Instagram redirects the browser to (for a consent page of one's own). Raises
        ValueError with Instagram's error message when the window would show an error."""
        self.authorize_requests.append(dict(query))
        self.set_person(person, consent)
        try:
            return self._authorize_outcome(dict(query))
        except AuthorizeError as error:
            raise ValueError(str(error)) from None

    # -- inside: records ------------------------------------------------------------------------

    def _account(self, account: str) -> Account:
        record = self._accounts.get(account)
        if record is None:
            record = next((a for a in self._accounts.values() if a.person.user_id == account), None)
        if record is None:
            raise KeyError(f"unknown Instagram account {account}")
        return record

    def _token(self, value: str) -> IgToken:
        token = self._tokens.get(value)
        if token is None:
            raise KeyError("unknown token")
        return token

    def _tokens_of(self, account: str) -> list[IgToken]:
        account_id = self._account(account).person.id
        return [t for t in self._tokens.values() if t.account_id == account_id]

    def _issue_token(self, account_id: str, kind: TokenKind) -> IgToken:
        now = int(self.now())
        lifetime = SHORT_LIVED_SECONDS if kind is TokenKind.SHORT else LONG_LIVED_SECONDS
        # Instagram Login's user tokens start with "IGAA" (older ones "IGQV").
        value = "IGAA" + secrets.token_urlsafe(96)
        token = IgToken(value, account_id, kind, now, now + lifetime)
        self._tokens[value] = token
        return token

    # -- HTTP -----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        params: JsonDict = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        self.requests.append((request.method, request.path, params))
        try:
            return await self._answer(request, params)
        except (asyncio.CancelledError, web.HTTPException):
            raise
        except Exception as error:  # a stand-in bug: make it visible to the test
            self.internal_errors.append(error)
            detail = {"message": f"stand-in error: {error!r}", "type": "StandinBug", "code": -1}
            return web.json_response({"error": detail}, status=500)

    async def _answer(self, request: web.Request, params: JsonDict) -> web.StreamResponse:
        if self._take(self._network_faults, request.path):
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        parts = [p for p in request.path.split("/") if p]
        if parts[:1] == ["cdn"] and request.method == "GET":
            return self._cdn(parts, params)
        if parts == ["oauth", "authorize"]:
            return self._authorize(request.method, params)
        if parts == ["oauth", "access_token"]:
            return self._token_endpoint(request, params)
        if parts and _VERSION_RE.fullmatch(parts[0]):
            parts.pop(0)
        if self.latency:
            await asyncio.sleep(self.latency)
        return self._graph_answer(request, parts, params)

    @staticmethod
    def _take(faults: list[FaultT], path: str) -> FaultT | None:
        for fault in faults:
            if fault.path_contains in path:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    faults.remove(fault)
                return fault
        return None

    # -- the authorization window (www.instagram.com/oauth/authorize) ---------------------------

    def _authorize(self, method: str, params: JsonDict) -> web.Response:
        query = {k: str(v) for k, v in params.items() if k in _AUTHORIZE_PARAMS}
        if method == "GET":
            self.authorize_requests.append(query)
        try:
            requested = self._check_authorize(query)
            if method == "POST":
                # The sandbox consent page's form: what the person chose.
                known = [record.person for record in self._accounts.values()]
                chosen = person_from_form(params, requested, known)
                if isinstance(chosen, str):
                    return self._page(query, requested, error=chosen, status=400)
                self.set_person(*chosen)
                return _redirect(self._authorize_outcome(query))
            if method != "GET":
                raise web.HTTPMethodNotAllowed(method, ["GET", "POST"])
            if self.consent_page or self._current is None:
                return self._page(query, requested)
            return _redirect(self._authorize_outcome(query))
        except AuthorizeError as error:
            body = TokenEndpointError(str(error)).body()
            return web.json_response(body, status=400)

    def _page(
        self, query: JsonDict, requested: list[str], *, error: str = "", status: int = 200
    ) -> web.Response:
        current = self._accounts[self._current].person if self._current is not None else None
        known = [a.person for a in self._accounts.values()]
        text = consent_page(
            app_name=self.app_name,
            query=query,
            requested=requested,
            current=current,
            known=known,
            error=error,
        )
        return web.Response(text=text, content_type="text/html", status=status)

    def _check_authorize(self, query: JsonDict) -> list[str]:
        """The window's own checks, before anyone sees it; returns the requested scopes."""
        if query.get("client_id") != self.app_id:
            raise AuthorizeError("Invalid platform app")
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri or (
            self.valid_redirect_uris is not None and redirect_uri not in self.valid_redirect_uris
        ):
            raise AuthorizeError("Invalid redirect_uri")
        if query.get("response_type") != "code":
            raise AuthorizeError("Invalid response_type: only code is supported")
        requested = [s for s in re.split(r"[,\s]+", str(query.get("scope", ""))) if s]
        unknown = [s for s in requested if s not in SCOPES]
        if unknown:
            raise AuthorizeError(f"Invalid Scopes: {', '.join(unknown)}")
        if BASIC_SCOPE not in requested:
            raise AuthorizeError(f"Invalid Scopes: {BASIC_SCOPE} is required")
        # Instagram does not insist on state; the bot must always send it (CSRF), so the
        # stand-in refuses to carry on without it, like the Facebook stand-in.
        if not query.get("state"):
            raise AuthorizeError("No state parameter: the stand-in refuses a login without state")
        return list(dict.fromkeys(requested))

    def _authorize_outcome(self, query: JsonDict) -> str:
        requested = self._check_authorize(query)
        if self._current is None:
            raise AuthorizeError("Nobody is logged in to Instagram (call set_person first)")
        record = self._accounts[self._current]
        consent = record.consent
        redirect_uri = str(query["redirect_uri"])
        state = str(query["state"])
        if consent.error is not None:
            return _with_query(
                redirect_uri,
                {
                    "error": consent.error,
                    "error_reason": consent.error,
                    "error_description": "An unknown error has occurred.",
                    "state": state,
                },
            )
        if consent.cancel:
            # Business Login's "Canceled authorization" redirect (no code, no "#_").
            return _with_query(
                redirect_uri,
                {
                    "error": "access_denied",
                    "error_reason": "user_denied",
                    "error_description": "The user denied your request.",
                    "state": state,
                },
            )
        record.scopes = [s for s in requested if s == BASIC_SCOPE or s not in consent.declined]
        code = secrets.token_urlsafe(96)
        self._codes[code] = Code(record.person.id, self.app_id, redirect_uri, self.now())
        # "we append #_ to the end of the redirect URI, but it is not part of the code itself":
        # the code comes last, so whoever takes the URL apart by hand gets "<code>#_".
        return _with_query(redirect_uri, {"state": state, "code": code}) + "#_"

    # -- the token endpoint (api.instagram.com/oauth/access_token) ------------------------------

    def _token_endpoint(self, request: web.Request, params: JsonDict) -> web.Response:
        try:
            if self.outage:
                raise TokenEndpointError("Service temporarily unavailable", status=500)
            injected = self._take(self._injected, request.path)
            if injected is not None:
                error = injected.error
                raise TokenEndpointError(
                    error.message, status=error.http_status, error_type=error.error_type
                )
            if request.method != "POST":
                raise TokenEndpointError("Invalid request: this endpoint takes a POST", status=405)
            return web.json_response(self._exchange_code(params))
        except TokenEndpointError as error:
            return web.json_response(error.body(), status=error.status)

    def _exchange_code(self, params: JsonDict) -> JsonDict:
        if params.get("client_id") != self.app_id:
            raise TokenEndpointError("Invalid platform app")
        if params.get("client_secret") != self.app_secret:
            raise TokenEndpointError("Error validating client secret.")
        if params.get("grant_type") != "authorization_code":
            raise TokenEndpointError("Invalid grant_type")
        for name in ("redirect_uri", "code"):
            if not params.get(name):
                raise TokenEndpointError(f"Missing required field {name}")
        # A code still carrying the "#_" is not a code Instagram issued: not found.
        code = self._codes.get(str(params["code"]))
        if code is None:
            raise TokenEndpointError("Matching code was not found or was already used")
        if code.used:
            raise TokenEndpointError("This authorization code has been used")
        if self.now() - code.issued_at > self.code_lifetime:
            raise TokenEndpointError("This authorization code has expired")
        if params["redirect_uri"] != code.redirect_uri or params["client_id"] != code.client_id:
            raise TokenEndpointError(
                "Error validating verification code. Please make sure your redirect_uri is "
                "identical to the one you used in the OAuth dialog request"
            )
        code.used = True
        token = self._issue_token(code.account_id, TokenKind.SHORT)
        scopes = self._accounts[code.account_id].scopes
        if self.exchange_shape is ExchangeShape.FLAT:
            return {
                "access_token": token.value,
                "user_id": int(code.account_id) if code.account_id.isdigit() else code.account_id,
                "permissions": list(scopes),
            }
        return {
            "data": [
                {
                    "access_token": token.value,
                    "user_id": code.account_id,
                    "permissions": ",".join(scopes),
                }
            ]
        }

    # -- the Graph host (graph.instagram.com) ---------------------------------------------------

    def _graph_answer(
        self, request: web.Request, parts: list[str], params: JsonDict
    ) -> web.Response:
        keys = self._call_keys(request, params)
        try:
            if self.outage:
                raise service_unavailable()
            injected = self._take(self._injected, request.path)
            if injected is not None:
                raise injected.error
            limited = self.limits.admit(keys, self.now())
            if limited is not None:
                raise limited
            body = self._graph(request, parts, params)
            return web.json_response(body, headers=self.limits.headers(keys, self.now()))
        except GraphError as error:
            return web.json_response(
                _error_body(error),
                status=error.http_status,
                headers=self.limits.headers(keys, self.now()),
            )

    @staticmethod
    def _token_value(request: web.Request, params: JsonDict) -> str:
        value = str(params.get("access_token", ""))
        header = request.headers.get("Authorization", "")
        if not value and header.split(" ", 1)[0] in ("OAuth", "Bearer") and " " in header:
            value = header.split(" ", 1)[1].strip()
        return value

    def _call_keys(self, request: web.Request, params: JsonDict) -> CallKeys:
        token = self._tokens.get(self._token_value(request, params))
        if token is None:
            return CallKeys()
        person = self._accounts[token.account_id].person
        return CallKeys(user_id=person.id, instagram_id=person.user_id)

    def _graph(self, request: web.Request, parts: list[str], params: JsonDict) -> JsonDict:
        if parts == ["access_token"]:
            return self._long_lived(params)
        if parts == ["refresh_access_token"]:
            return self._refresh(params)
        value = self._token_value(request, params)
        if not value:
            raise GraphError(104, "An access token is required to request this resource.")
        token = self._valid_token(value)
        record = self._accounts[token.account_id]
        person = record.person
        if not parts:
            raise GraphError(100, "(#100) Unsupported request: no object given")
        node, edges = parts[0], parts[1:]
        if request.method != "GET":
            raise _unsupported(request.method, node)
        if node in ("me", person.id, person.user_id):
            if not edges:
                return self._render_user(person, params)
            if edges == ["media"]:
                return self._media_edge(request, person, params)
            if edges == ["insights"]:
                self._require(record, INSIGHTS_SCOPE)
                if person.account_type is AccountType.PERSONAL:
                    raise GraphError(10, _NO_PERMISSION)
                data = self.instagram_data(person.id)
                return user_insights(
                    person.user_id, data, person.followers_count, params, self.now()
                )
            raise nonexisting_field(edges[0], "User")
        post = self._own_post(person, node)
        if post is None:
            raise unsupported_get(node)
        if not edges:
            fields = [name for name, _ in parse_fields(str(params.get("fields", "id")))]
            return render_media(post, person.username, fields, self.base_url)
        if edges == ["insights"]:
            self._require(record, INSIGHTS_SCOPE)
            return media_insights(post, params)
        raise nonexisting_field(edges[0], "Media")

    def _require(self, record: Account, scope: str) -> None:
        if scope not in record.scopes:
            raise GraphError(10, _NO_PERMISSION)

    def _valid_token(self, value: str) -> IgToken:
        token = self._tokens.get(value)
        if token is None:
            raise GraphError(190, "Invalid OAuth access token - Cannot parse access token")
        if token.invalid is not None:
            raise token.invalid
        now = self.now()
        if token.expires_at <= now:
            raise GraphError(
                190,
                f"Error validating access token: Session has expired on "
                f"{facebook_time(token.expires_at)}. The current time is {facebook_time(now)}.",
                subcode=463,
            )
        return token

    def _long_lived(self, params: JsonDict) -> JsonDict:
        """``GET /access_token?grant_type=ig_exchange_token&client_secret&access_token``."""
        if params.get("grant_type") != "ig_exchange_token":
            raise GraphError(100, "(#100) grant_type must be ig_exchange_token")
        if params.get("client_secret") != self.app_secret:
            raise GraphError(101, "Error validating client secret.")
        short = self._valid_token(str(params.get("access_token", "")))
        if short.kind is not TokenKind.SHORT:
            # Undocumented wording; the rule is the reference's: "exchange short-lived tokens".
            raise GraphError(100, "(#100) Only a short-lived access token can be exchanged")
        token = self._issue_token(short.account_id, TokenKind.LONG)
        return {"access_token": token.value, "token_type": "bearer", "expires_in": _left(token)}

    def _refresh(self, params: JsonDict) -> JsonDict:
        """``GET /refresh_access_token?grant_type=ig_refresh_token&access_token``: a long-lived
        token at least 24 hours old and not expired; the answer lives 60 days from now."""
        if params.get("grant_type") != "ig_refresh_token":
            raise GraphError(100, "(#100) grant_type must be ig_refresh_token")
        old = self._valid_token(str(params.get("access_token", "")))
        if old.kind is not TokenKind.LONG:
            raise GraphError(100, "(#100) Only a long-lived access token can be refreshed")
        if self.now() - old.issued_at < REFRESH_MIN_AGE_SECONDS:
            # The rule is documented, the wording is not: a plain code 100 the bot can tell
            # from 190 (the token itself is fine, try again later).
            raise GraphError(
                100, "(#100) The access token must be at least 24 hours old to be refreshed"
            )
        token = self._issue_token(old.account_id, TokenKind.LONG)
        return {"access_token": token.value, "token_type": "bearer", "expires_in": _left(token)}

    def _render_user(self, person: IgPerson, params: JsonDict) -> JsonDict:
        values: JsonDict = {
            "id": person.id,
            "user_id": person.user_id,
            "username": person.username,
            "name": person.name,
            "account_type": person.account_type.value,
            # A signed CDN URL that expires (`oe`, hex unix time): never store it.
            "profile_picture_url": f"{self.base_url}/cdn/ig/{person.user_id}/profile.png?oe="
            + format(int(self.now()) + 3 * 86400, "x"),
            "followers_count": person.followers_count,
            "follows_count": person.follows_count,
            "media_count": person.media_count,
            "biography": person.biography,
            "website": person.website,
        }
        result: JsonDict = {}
        for name, _ in parse_fields(str(params.get("fields", "id"))):
            if name not in USER_FIELDS:
                raise nonexisting_field(name, "User")
            if values[name] != "":
                result[name] = values[name]  # Graph leaves out empty fields
        result.setdefault("id", person.id)
        return result

    def _own_post(self, person: IgPerson, media_id: str) -> Post | None:
        if self._media_owners.get(media_id) != person.id:
            return None
        posts = self.instagram_data(person.id).posts or []
        return next((p for p in posts if p.id == media_id), None)

    def _media_edge(self, request: web.Request, person: IgPerson, params: JsonDict) -> JsonDict:
        posts = sorted(
            self.instagram_data(person.id).posts or [], key=lambda p: p.timestamp, reverse=True
        )
        fields = [name for name, _ in parse_fields(str(params.get("fields", "id")))]
        return self._cursor_page(
            request,
            params,
            posts,
            lambda post: render_media(post, person.username, fields, self.base_url),
        )

    def _cursor_page(
        self,
        request: web.Request,
        params: JsonDict,
        items: Sequence[T],
        render: Callable[[T], JsonDict],
    ) -> JsonDict:
        """One page of an edge as Graph pages it: ``limit``, ``after``/``before`` cursors, and
        absolute ``next``/``previous`` URLs carrying the original query."""
        size = MEDIA_PAGE_SIZE
        if str(params.get("limit", "")).isdigit():
            size = max(1, min(int(params["limit"]), MEDIA_PAGE_MAX))
        start = cursor_index(str(params["after"])) + 1 if params.get("after") else 0
        if params.get("before"):
            start = max(0, cursor_index(str(params["before"])) - size)
        chunk = items[start : start + size]
        data = [render(item) for item in chunk]
        if not chunk:
            return {"data": data}
        query = {k: v for k, v in request.query.items() if k not in ("after", "before")}
        cursors = {"before": cursor_for(start), "after": cursor_for(start + len(chunk) - 1)}
        paging: JsonDict = {"cursors": cursors}
        if start + len(chunk) < len(items):
            paging["next"] = f"{self.base_url}{request.path}?" + urlencode(
                {**query, "after": cursors["after"]}
            )
        if start > 0:
            paging["previous"] = f"{self.base_url}{request.path}?" + urlencode(
                {**query, "before": cursors["before"]}
            )
        return {"data": data, "paging": paging}

    def _cdn(self, parts: list[str], params: JsonDict) -> web.Response:
        """Instagram's CDN: pictures as small PNGs; a URL past its ``oe`` is refused."""
        expires = str(params.get("oe", ""))
        if expires:
            try:
                expired = int(expires, 16) < self.now()
            except ValueError:
                expired = True
            if expired:
                return web.Response(status=403, text="URL signature expired")
        return web.Response(body=png("/".join(parts[1:])), content_type="image/png")


_AUTHORIZE_PARAMS = frozenset(
    {
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "force_reauth",
        "enable_fb_login",
    }
)


def _left(token: IgToken) -> int:
    return token.expires_at - token.issued_at


def _with_query(url: str, params: dict[str, str]) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode(params)}"


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


def _unsupported(method: str, node: str) -> GraphError:
    error = unsupported_get(node)
    error.message = error.message.replace("Unsupported get", f"Unsupported {method.lower()}")
    return error
