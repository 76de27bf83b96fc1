"""The stand-in itself: the aiohttp app serving the login dialog and the Graph API, tokens and
``debug_token``, what a person's token can see, and how nodes are rendered. The Instagram reads
(insights, demographics, media) are answered by instagram.py, which lists the Graph behaviours
they mirror and Meta's pages they come from."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiohttp import web

from .errors import (
    APP_REMOVED,
    DATA_ACCESS_EXPIRED,
    EXPIRED,
    INVALIDATING_SUBCODES,
    LOGGED_OUT,
    DialogError,
    GraphError,
    invalid_token,
    nonexisting_field,
    page_role_lost,
    service_unavailable,
    unsupported_get,
)
from .fields import (
    IG_FIELDS,
    PAGE_FIELDS,
    USER_FIELDS,
    cursor_for,
    cursor_index,
    facebook_time,
    parse_fields,
)
from .instagram import (
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
from .limits import CallKeys, RateLimits
from .people import INSTAGRAM_SCOPES, PAGE_SCOPES, Consent, FbPage, FbUser, IgAccount
from .state import (
    APPSECRET_TIME_WINDOW,
    DATA_ACCESS_SECONDS,
    LONG_LIVED_SECONDS,
    SHORT_LIVED_SECONDS,
    Code,
    Fault,
    FaultT,
    InjectedError,
    JsonDict,
    Person,
    Token,
)

_VERSION_RE = re.compile(r"v\d+\.\d+")
# Requests in one batch at most (Graph's batch API).
BATCH_MAX = 50

T = TypeVar("T")


class CallRequest(Protocol):
    """What the Graph handling reads of a request: aiohttp's, or one request of a batch."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def query(self) -> Mapping[str, str]: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class _BatchedCall:
    """One request of a batch, as the Graph handling sees it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]


def _is_batch(request: web.Request, params: JsonDict) -> bool:
    """A POST of ``batch`` to the Graph root (``/`` or ``/{version}/``)."""
    parts = [p for p in request.path.split("/") if p]
    root = not parts or (len(parts) == 1 and _VERSION_RE.fullmatch(parts[0]) is not None)
    return request.method == "POST" and root and "batch" in params


def _error_body(error: GraphError) -> JsonDict:
    """Graph's error envelope."""
    detail: JsonDict = {"message": error.message, "type": error.error_type, "code": error.code}
    if error.subcode is not None:
        detail["error_subcode"] = error.subcode
    if error.is_transient:
        detail["is_transient"] = True
    if error.error_data is not None:
        detail["error_data"] = error.error_data
    if error.user_title is not None:
        detail["error_user_title"] = error.user_title
    if error.user_msg is not None:
        detail["error_user_msg"] = error.user_msg
    detail["fbtrace_id"] = "A" + secrets.token_urlsafe(15)
    return {"error": detail}


class GraphStandin:
    """Facebook's login dialog and Graph API for one Meta app."""

    def __init__(
        self,
        *,
        app_id: str = "1234567890",
        app_secret: str = "test-app-secret",
        version: str = "v25.0",
        app_name: str = "Connect Bot",
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.version = version
        self.app_name = app_name

        self.page_size = 2  # /me/accounts page size: small, so tests exercise paging
        self.latency = 0.0  # seconds added to every Graph API answer
        self.require_appsecret_proof = True
        # "Valid OAuth redirect URIs" with Strict Mode; None accepts any redirect_uri.
        self.valid_redirect_uris: list[str] | None = None
        # Meta publishes no lifetime for codes; ten minutes is what practitioners observe.
        self.code_lifetime = 600.0

        self.requests: list[tuple[str, str, JsonDict]] = []
        # Batch API POSTs (their form fields); each request in one is in `requests` as a call.
        self.batch_requests: list[JsonDict] = []
        # When each of `requests` arrived and when its answer was ready (time.monotonic()), so
        # tests can tell which calls were in flight at the same time.
        self.request_times: list[tuple[float, float]] = []
        self.dialog_requests: list[JsonDict] = []
        self.dialog_versions: list[str] = []
        self.revoked: list[str] = []
        self.internal_errors: list[BaseException] = []

        self._runner: web.AppRunner | None = None
        self._port = 0
        self._current: str | None = None  # id of the person logged in to the browser
        self._people: dict[str, Person] = {}
        self._codes: dict[str, Code] = {}
        self._tokens: dict[str, Token] = {}
        self._page_tokens: dict[tuple[str, str], str] = {}
        self._network_faults: list[Fault] = []
        self._injected: list[InjectedError] = []
        # The stand-in's clock runs this many seconds ahead of the real one (`fast_forward`).
        self.clock_offset = 0.0
        # Graph's rate limits, per hour (all None: unlimited) and outages (`set_outage`).
        self.limits = RateLimits()
        self.outage = False
        # Insight series, demographics and posts per Instagram account id (`instagram_data`).
        self._instagram: dict[str, InstagramData] = {}
        self._media_owners: dict[str, str] = {}  # media id -> Instagram account id

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

    def set_person(self, user: FbUser, consent: Consent | None = None) -> None:
        """Who is logged in to Facebook in the browser, and what they will do in the dialog.

        Facebook remembers a person across logins (declined permissions stay declined), so the
        same user id keeps its history; ``user`` replaces their Pages."""
        person = self._people.get(user.id)
        if person is None:
            person = self._people[user.id] = Person(user, consent or Consent())
        person.user = user
        person.consent = consent or Consent()
        self._current = user.id

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
        """The next ``count`` Graph calls whose path contains ``path_contains`` fail with this
        error. HTTP status defaults to 500 for the transient codes 1 and 2, else 400."""
        status = http_status if http_status is not None else (500 if code in (1, 2) else 400)
        error = GraphError(
            code, message, error_type=error_type, subcode=subcode, http_status=status
        )
        self._injected.append(InjectedError(path_contains, count, error))

    def fail_network(self, path_contains: str, count: int = 1) -> None:
        """The next ``count`` requests whose path contains it get the connection closed on them."""
        self._network_faults.append(Fault(path_contains, count))

    def expire_tokens(self, user_id: str) -> None:
        """Every token of this person has run out (error 190, subcode 463)."""
        for token in self._tokens.values():
            if token.user_id == user_id:
                token.expires_at = int(self.now()) - 1

    # -- lifecycle controls: what Facebook does to a connection after the login -----------------

    def now(self) -> float:
        """The stand-in's clock: real time plus `clock_offset`. Token lifetimes, data access
        and the rate-limit window all run on it."""
        return time.time() + self.clock_offset

    def fast_forward(self, *, days: float = 0, seconds: float = 0) -> None:
        """Move the stand-in's clock ahead ("fast-forward 80 days"): tokens and data access
        expire as they would by then, without anyone sleeping."""
        self.clock_offset += days * 86400 + seconds

    def expire_token(self, value: str) -> None:
        """This one token has run out (error 190, subcode 463)."""
        self._token(value).expires_at = int(self.now()) - 1

    def set_token_expires_at(self, value: str, when: float) -> None:
        """Move one token's `expires_at` (unix seconds on the stand-in's clock; 0: never)."""
        self._token(value).expires_at = int(when)

    def set_data_access_expires_at(self, user_id: str, when: float) -> None:
        """Move this person's `data_access_expires_at` (90 days after they were last active)."""
        self._person(user_id).active_at = when - DATA_ACCESS_SECONDS

    def invalidate_tokens(self, user_id: str, subcode: int, *, token: str | None = None) -> None:
        """Facebook invalidates this person's tokens (or just ``token``) with error 190 and
        ``subcode``: 458 app removed (every token; Facebook forgets the grants), 460 password
        changed (user and Page tokens), 463 expired, 467 logged out (user tokens only: Page
        tokens from a long-lived token survive a logout)."""
        if subcode not in INVALIDATING_SUBCODES:
            raise ValueError(f"subcode must be one of {INVALIDATING_SUBCODES}")
        person = self._person(user_id)
        if subcode == APP_REMOVED and token is None:
            person.permissions.clear()
            person.selected_pages = None
            person.selected_instagram = None
        for each in self._tokens_of(user_id, token):
            if subcode == EXPIRED:
                each.expires_at = int(self.now()) - 1
            elif subcode != LOGGED_OUT or each.kind == "USER":
                each.invalid = invalid_token(subcode, self.app_id)

    def remove_app(self, user_id: str) -> None:
        """The person removes the app in their Facebook settings (error 190, subcode 458)."""
        self.invalidate_tokens(user_id, APP_REMOVED)

    def change_password(self, user_id: str) -> None:
        """The person changes their Facebook password (error 190, subcode 460)."""
        self.invalidate_tokens(user_id, 460)

    def log_out(self, user_id: str) -> None:
        """The person logs out of Facebook everywhere (error 190, subcode 467)."""
        self.invalidate_tokens(user_id, LOGGED_OUT)

    def remove_permission(self, user_id: str, permission: str) -> None:
        """The person removes one permission in the app's settings on Facebook: it shows as
        declined in /me/permissions and leaves debug_token's scopes."""
        person = self._person(user_id)
        if person.permissions.get(permission) != "granted":
            raise ValueError(f"{permission} is not granted")
        person.permissions[permission] = "declined"

    def remove_page_role(self, user_id: str, page_id: str) -> None:
        """The person loses their role on the Page: it leaves /me/accounts, and its Page tokens
        stop working (error 190)."""
        person = self._person(user_id)
        self._page(person, page_id)
        pages = [page for page in person.user.pages if page.id != page_id]
        person.user = replace(person.user, pages=pages)
        for token in self._tokens.values():
            if token.user_id == user_id and token.kind == "PAGE" and token.page_id == page_id:
                token.invalid = page_role_lost()

    def unlink_instagram(self, user_id: str, page_id: str) -> None:
        """The Instagram account is unlinked from the Page: the Page has no
        instagram_business_account any more, and the account is unreachable through it."""
        self._change_page(user_id, page_id, instagram=None, connected_instagram=None)

    def unpublish_page(self, user_id: str, page_id: str, *, published: bool = False) -> None:
        self._change_page(user_id, page_id, is_published=published)

    def change_username(self, user_id: str, page_id: str, username: str) -> None:
        """The Instagram account linked to the Page gets a new username."""
        page = self._page(self._person(user_id), page_id)
        if page.instagram is None:
            raise ValueError(f"Page {page_id} has no Instagram account")
        self._change_page(user_id, page_id, instagram=replace(page.instagram, username=username))

    def set_rate_limits(
        self,
        *,
        app_per_hour: int | None = None,
        user_per_hour: int | None = None,
        page_per_hour: int | None = None,
        instagram_per_hour: int | None = None,
    ) -> None:
        """Calls allowed per sliding hour (None: unlimited): the app as a whole (error 4), per
        person (17), per Page token (32), per Instagram account (80002)."""
        self.limits.app_per_hour = app_per_hour
        self.limits.user_per_hour = user_per_hour
        self.limits.page_per_hour = page_per_hour
        self.limits.instagram_per_hour = instagram_per_hour

    def set_outage(self, down: bool = True) -> None:
        """Graph is down: every Graph API call answers 500, code 2 "Service temporarily
        unavailable" (the login dialog still opens)."""
        self.outage = down

    # -- Instagram's figures: profile, insights, demographics, posts ---------------------------

    def set_instagram_profile(
        self,
        instagram_id: str,
        *,
        followers: int | None = None,
        follows: int | None = None,
        media_count: int | None = None,
        website: str | None = None,
        name: str | None = None,
        biography: str | None = None,
    ) -> None:
        """Change what the account's profile shows, on every Page it is linked to. Like the
        other Page changes, a later `set_person` with the caller's own FbUser brings back what
        that FbUser says."""
        changes: dict[str, Any] = {
            key: value
            for key, value in {
                "followers_count": followers,
                "follows_count": follows,
                "media_count": media_count,
                "website": website,
                "name": name,
                "biography": biography,
            }.items()
            if value is not None
        }
        found = False
        for person in self._people.values():
            pages = []
            for page in person.user.pages:
                for attribute in ("instagram", "connected_instagram"):
                    account = getattr(page, attribute)
                    if account is not None and account.id == instagram_id:
                        page = replace(page, **{attribute: replace(account, **changes)})
                        found = True
                pages.append(page)
            person.user = replace(person.user, pages=pages)
        if not found:
            raise KeyError(f"no Page is linked to Instagram account {instagram_id}")

    def set_insights(
        self,
        instagram_id: str,
        *,
        reach: list[int] | None = None,
        views: list[int] | None = None,
        accounts_engaged: list[int] | None = None,
        total_interactions: list[int] | None = None,
    ) -> None:
        """Set day values (oldest first; the last one is the last complete Instagram day) for
        these metrics; days before them count 0. Metrics left out keep their seeded defaults.
        likes, comments, saves, shares, replies and profile_views follow total_interactions."""
        data = self.instagram_data(instagram_id)
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

    def set_demographics(self, instagram_id: str, demographics: Demographics | None) -> None:
        """Followers by age/gender, country and city; None: Instagram has none (empty data)."""
        data = self.instagram_data(instagram_id)
        data.demographics = demographics
        data.demographics_set = True

    def set_posts(self, instagram_id: str, posts: list[Post]) -> None:
        """The account's posts (any order; Graph lists them newest first)."""
        self.instagram_data(instagram_id).posts = list(posts)
        self._media_owners.update({post.id: instagram_id for post in posts})

    def set_new_account(self, instagram_id: str) -> None:
        """A brand-new professional account: no posts, and every insight answers ``data: []``."""
        data = self.instagram_data(instagram_id)
        data.no_data = True
        data.series.clear()
        data.posts = []
        data.demographics = None
        data.demographics_set = True

    def instagram_data(self, instagram_id: str) -> InstagramData:
        """The stand-in's record of an account's figures (seeded defaults until set)."""
        data = self._instagram.get(instagram_id)
        if data is None:
            data = self._instagram[instagram_id] = InstagramData(seed=instagram_id)
        if data.posts is None:
            account = self._instagram_account(instagram_id)
            followers = account.followers_count if account is not None else 1000
            count = min(6, account.media_count if account is not None else 6)
            data.posts = default_posts(instagram_id, followers, count, self.now())
            self._media_owners.update({post.id: instagram_id for post in data.posts})
        return data

    def token_info(self, value: str) -> Token:
        """The stand-in's record of one token (kind, expiry, Page, whether it was ended)."""
        return self._token(value)

    def _token(self, value: str) -> Token:
        token = self._tokens.get(value)
        if token is None:
            raise KeyError("unknown token")
        return token

    def _tokens_of(self, user_id: str, value: str | None) -> list[Token]:
        if value is not None:
            return [self._token(value)]
        return [t for t in self._tokens.values() if t.user_id == user_id]

    def _person(self, user_id: str) -> Person:
        person = self._people.get(user_id)
        if person is None:
            raise KeyError(f"unknown person {user_id}")
        return person

    @staticmethod
    def _page(person: Person, page_id: str) -> FbPage:
        for page in person.user.pages:
            if page.id == page_id:
                return page
        raise KeyError(f"{person.user.id} has no Page {page_id}")

    def _change_page(self, user_id: str, page_id: str, **changes: Any) -> None:
        # Copies, never the caller's objects: tests share their FbPage / IgAccount values.
        person = self._person(user_id)
        self._page(person, page_id)
        pages = [
            replace(page, **changes) if page.id == page_id else page for page in person.user.pages
        ]
        person.user = replace(person.user, pages=pages)

    def issued_tokens(self) -> list[str]:
        return list(self._tokens)

    def issued_codes(self) -> list[str]:
        return list(self._codes)

    def complete_dialog(
        self, query: Mapping[str, str], user: FbUser, consent: Consent, *, version: str = ""
    ) -> str:
        """A person logged in as ``user`` finishes the dialog opened with ``query`` (at
        ``/{version}/dialog/oauth``) by doing ``consent``; returns the URL Facebook redirects the
        browser to. For a dialog page of one's own (the playground's sandbox consent page) in
        place of the instant redirect.

        Raises ValueError with the text of Facebook's error page when the dialog would show one
        (wrong app id, no state, a redirect URI that is not allowed, ...)."""
        self.dialog_requests.append(dict(query))
        self.dialog_versions.append(version)
        self.set_person(user, consent)
        try:
            return self._dialog_outcome(dict(query))
        except DialogError as error:
            raise ValueError(str(error)) from None

    def appsecret_proof(self, access_token: str) -> str:
        return hmac.new(self.app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()

    # -- HTTP -----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        params: JsonDict = dict(request.query)
        if request.method in ("POST", "DELETE") and request.can_read_body:
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        if _is_batch(request, params):
            # Graph counts each request in a batch as a call of its own: `requests` lists those
            # (`_batch`), `batch_requests` the POSTs that carried them.
            self.batch_requests.append(params)
            return await self._answer(request, params)
        self.requests.append((request.method, request.path, params))
        arrived = time.monotonic()
        self.request_times.append((arrived, arrived))
        index = len(self.request_times) - 1
        try:
            return await self._answer(request, params)
        finally:
            self.request_times[index] = (arrived, time.monotonic())

    async def _answer(self, request: web.Request, params: JsonDict) -> web.StreamResponse:
        if self._take(self._network_faults, request.path):
            # The connection drops without a status line, like a reset through a proxy.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError

        parts = [p for p in request.path.split("/") if p]
        if parts[:1] == ["cdn"] and request.method == "GET":
            return self._cdn(parts, params)
        version = parts.pop(0) if parts and _VERSION_RE.fullmatch(parts[0]) else None
        if parts == ["dialog", "oauth"] and request.method == "GET":
            return self._dialog(params, version or "")

        if self.latency:
            await asyncio.sleep(self.latency)
        if _is_batch(request, params):
            return self._batch(request, params, version or self.version)
        status, body, headers = self._respond(request, parts, params)
        return web.json_response(body, status=status, headers=headers)

    def _respond(
        self, request: CallRequest, parts: list[str], params: JsonDict
    ) -> tuple[int, JsonDict, dict[str, str]]:
        """One Graph call (on its own, or one request of a batch): status, body, headers."""
        keys = self._call_keys(request, parts, params)
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
            return 200, body, self._usage_headers(keys)
        except GraphError as error:
            return error.http_status, _error_body(error), self._usage_headers(keys)
        except Exception as error:  # a stand-in bug: make it visible to the test
            self.internal_errors.append(error)
            detail = {"message": f"stand-in error: {error!r}", "type": "StandinBug", "code": -1}
            return 500, {"error": detail}, {}

    def _batch(self, request: web.Request, params: JsonDict, version: str) -> web.Response:
        """Graph's batch API: POST to the version root with ``batch``, a JSON array of up to
        50 requests ({"method", "relative_url", "body"?}). Each runs as a call of its own (its
        own auth, errors and rate limits; a request without access_token uses the batch's).
        The answer is an array in the same order: {"code", "headers" (unless include_headers
        is false), "body" (JSON text)}, or null for a request that did not complete (here: one
        whose path a `fail_network` fault names)."""
        try:
            if self.outage:
                raise service_unavailable()
            injected = self._take(self._injected, request.path)
            if injected is not None:
                raise injected.error
            try:
                batch = json.loads(str(params.get("batch", "")))
            except ValueError:
                batch = None
            if not isinstance(batch, list) or not all(isinstance(r, dict) for r in batch):
                raise GraphError(
                    100,
                    "(#100) The parameter batch must be a JSON array",
                    error_type="GraphBatchException",
                )
            if len(batch) > BATCH_MAX:
                raise GraphError(
                    1,
                    f"(#1) Too many requests in batch message. Maximum batch size is {BATCH_MAX}",
                    error_type="GraphBatchException",
                    http_status=400,
                )
        except GraphError as error:
            return web.json_response(_error_body(error), status=error.http_status)
        headers_wanted = str(params.get("include_headers", "true")).lower() != "false"
        arrived = time.monotonic()
        answers: list[JsonDict | None] = []
        for item in batch:
            method = str(item.get("method", "GET")).upper()
            url = urlsplit(str(item.get("relative_url", "")))
            parts = [p for p in url.path.split("/") if p]
            if parts and _VERSION_RE.fullmatch(parts[0]):
                parts.pop(0)
            path = "/" + "/".join([version, *parts])
            inner: JsonDict = dict(parse_qsl(url.query, keep_blank_values=True))
            inner.update(parse_qsl(str(item.get("body", "")), keep_blank_values=True))
            if "access_token" not in inner:
                for key in ("access_token", "appsecret_proof", "appsecret_time"):
                    if key in params:
                        inner[key] = params[key]
            self.requests.append((method, path, inner))
            self.request_times.append((arrived, time.monotonic()))
            if self._take(self._network_faults, path):
                answers.append(None)
                continue
            query = {k: v for k, v in inner.items() if isinstance(v, str)}
            call = _BatchedCall(method, path, query, {})
            status, body, headers = self._respond(call, parts, inner)
            answer: JsonDict = {"code": status}
            if headers_wanted:
                answer["headers"] = [{"name": k, "value": v} for k, v in headers.items()]
            answer["body"] = json.dumps(body)
            answers.append(answer)
        return web.json_response(answers)

    def _usage_headers(self, keys: CallKeys) -> dict[str, str]:
        # Graph reports rate limit usage in percent on every answer (X-App-Usage), and per Page
        # or Instagram account on answers about one (X-Business-Use-Case-Usage).
        return self.limits.headers(keys, self.now())

    def _call_keys(self, request: CallRequest, parts: list[str], params: JsonDict) -> CallKeys:
        """Whom a Graph call counts against: the person whose token made it, the Page whose
        token made it (or which it reads), the Instagram account it reads."""
        value = params.get("access_token")
        header = request.headers.get("Authorization", "")
        if not value and header.split(" ", 1)[0] in ("OAuth", "Bearer"):
            value = header.split(" ", 1)[1].strip()
        token = self._tokens.get(str(value)) if value else None
        node = parts[0] if parts else ""
        if node == "me" and token is not None and token.kind == "PAGE":
            node = token.page_id or ""
        page_id = token.page_id if token is not None and token.kind == "PAGE" else None
        instagram_id = None
        if node in ("", "me", "debug_token", "oauth") or node == page_id:
            return CallKeys(token.user_id if token is not None else None, page_id, None)
        for person in self._people.values():
            for page in person.user.pages:
                if page.id == node:
                    page_id = page_id or node
                if page.instagram is not None and page.instagram.id == node:
                    instagram_id = node
        if instagram_id is None:
            instagram_id = self._media_owners.get(node)  # a post counts against its account
        return CallKeys(
            user_id=token.user_id if token is not None else None,
            page_id=page_id,
            instagram_id=instagram_id,
        )

    @staticmethod
    def _take(faults: list[FaultT], path: str) -> FaultT | None:
        for fault in faults:
            if fault.path_contains in path:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    faults.remove(fault)
                return fault
        return None

    # -- the login dialog -----------------------------------------------------------------------

    def _dialog(self, query: JsonDict, version: str) -> web.Response:
        self.dialog_requests.append(query)
        self.dialog_versions.append(version)
        try:
            location = self._dialog_outcome(query)
        except DialogError as error:
            page = (
                "<!DOCTYPE html><html><head><title>Error</title></head><body>"
                f"<h1>Sorry, something went wrong.</h1><p>{html.escape(str(error))}</p>"
                "</body></html>"
            )
            return web.Response(status=400, text=page, content_type="text/html")
        return web.Response(status=302, headers={"Location": location})

    def _dialog_outcome(self, query: JsonDict) -> str:
        if query.get("client_id") != self.app_id:
            raise DialogError(
                "Invalid App ID: The provided app ID does not look like a valid app ID."
            )
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri:
            raise DialogError("The parameter redirect_uri is required.")
        if self.valid_redirect_uris is not None and redirect_uri not in self.valid_redirect_uris:
            # Strict Mode compares the whole URI: an extra query parameter is a different URI.
            raise DialogError(
                "URL blocked: This redirect failed because the redirect URI is not whitelisted "
                "in the app's Client OAuth Settings."
            )
        if query.get("response_type", "code") != "code":
            raise DialogError("The stand-in serves the server-side code flow only.")
        # Facebook itself does not insist on these two; the bot must always send them, so the
        # stand-in refuses to carry on without them.
        if not query.get("state"):
            raise DialogError(
                "No state parameter: the stand-in refuses a login without CSRF state."
            )
        if not query.get("scope"):
            raise DialogError("No scope parameter: the bot must ask for its permissions.")
        if self._current is None:
            raise DialogError("Nobody is logged in to Facebook (call set_person first).")

        person = self._people[self._current]
        consent = person.consent
        state = str(query["state"])
        if consent.app_not_live:
            # Seen in practice, not documented: the same access_denied, plus error_code=200.
            return self._redirect(
                redirect_uri,
                {
                    "error": "access_denied",
                    "error_code": "200",
                    "error_description": "Permissions error",
                    "error_reason": "user_denied",
                    "state": state,
                },
            )
        if consent.error is not None:
            return self._redirect(
                redirect_uri,
                {
                    "error": consent.error,
                    "error_description": "An unknown error has occurred.",
                    "state": state,
                },
            )
        if consent.cancel:
            return self._redirect(
                redirect_uri,
                {
                    "error": "access_denied",
                    "error_reason": "user_denied",
                    "error_description": "Permissions error.",
                    "state": state,
                },
            )

        requested = [s for s in re.split(r"[,\s]+", str(query["scope"])) if s]
        if query.get("auth_type") == "rerequest":
            declined = set(consent.declined)
        else:
            # Without auth_type=rerequest the dialog does not ask again for what was declined.
            remembered = {p for p, status in person.permissions.items() if status == "declined"}
            declined = remembered | consent.declined
        person.permissions["public_profile"] = "granted"
        for permission in requested:
            if permission != "public_profile":
                person.permissions[permission] = "declined" if permission in declined else "granted"
        own_pages = [page.id for page in person.user.pages]
        person.selected_pages = (
            None if consent.pages is None else {p for p in own_pages if p in consent.pages}
        )
        person.selected_instagram = (
            None if consent.instagram_accounts is None else set(consent.instagram_accounts)
        )
        person.active_at = self.now()

        code = secrets.token_urlsafe(48)
        self._codes[code] = Code(person.user.id, redirect_uri, self.now())
        return self._redirect(redirect_uri, {"code": code, "state": state})

    @staticmethod
    def _redirect(redirect_uri: str, params: dict[str, str]) -> str:
        separator = "&" if "?" in redirect_uri else "?"
        # Facebook appends "#_=_" to the redirect; browsers keep it, servers never see it.
        return f"{redirect_uri}{separator}{urlencode(params)}#_=_"

    # -- the Graph API --------------------------------------------------------------------------

    def _graph(self, request: CallRequest, parts: list[str], params: JsonDict) -> JsonDict:
        method = request.method
        if parts == ["oauth", "access_token"]:
            return self._access_token(params)
        if parts == ["debug_token"] and method == "GET":
            return self._debug_token(params)

        token = self._authenticate(request, params)
        if not parts:
            raise GraphError(100, "(#100) Unsupported request: no object given")
        node, edges = parts[0], parts[1:]
        if node == "me":  # a Page token's "me" is the Page
            node = (token.page_id or "") if token.kind == "PAGE" else token.user_id
        person = self._people[token.user_id]
        if person.active_at + DATA_ACCESS_SECONDS <= self.now() and method != "DELETE":
            # The token is still valid (debug_token says so), but the person's data is not
            # readable any more until they renew with auth_type=reauthorize.
            raise invalid_token(DATA_ACCESS_EXPIRED, self.app_id)

        if node == token.user_id and token.kind == "USER":
            if method == "DELETE" and edges[:1] == ["permissions"]:
                return self._revoke(person, edges[1] if len(edges) > 1 else None)
            if method != "GET":
                raise unsupported_get(node)
            if not edges:
                return self._render_user(person, params)
            if edges == ["permissions"]:
                return {
                    "data": [
                        {"permission": name, "status": status}
                        for name, status in person.permissions.items()
                    ]
                }
            if edges == ["accounts"]:
                return self._accounts(request, person, params, token)
            raise nonexisting_field(edges[0], "User")

        if method == "GET" and edges:
            return self._instagram_edge(request, person, token, node, edges, params)
        if method != "GET":
            raise unsupported_get(node)
        page = self._reachable_page(person, token, node)
        if page is not None:
            return self._render_page(page, person, token, params.get("fields", "id,name"))
        ig_page = self._reachable_instagram(person, token, node)
        if ig_page is not None and ig_page.instagram is not None:
            if not self._instagram_allowed(person):
                raise GraphError(10, "(#10) Application does not have permission for this action")
            return self._render_instagram(
                ig_page.instagram, parse_fields(params.get("fields", "id,username"))
            )
        owned = self._media(node)
        if owned is not None and self._reachable_instagram(person, token, owned[0].id):
            if not self._instagram_allowed(person):
                raise GraphError(10, "(#10) Application does not have permission for this action")
            fields = [name for name, _ in parse_fields(params.get("fields", "id"))]
            return render_media(owned[1], owned[0].username, fields, self.base_url)
        raise unsupported_get(node)

    def _authenticate(self, request: CallRequest, params: JsonDict) -> Token:
        value = params.get("access_token")
        header = request.headers.get("Authorization", "")
        if not value and header.split(" ", 1)[0] in ("OAuth", "Bearer"):
            value = header.split(" ", 1)[1].strip()
        if not value:
            raise GraphError(104, "An access token is required to request this resource.")
        if value == f"{self.app_id}|{self.app_secret}":
            raise GraphError(
                2500,
                "An active access token must be used to query information about the current user.",
            )
        token = self._valid_token(value)
        proof = params.get("appsecret_proof")
        if proof is None:
            if self.require_appsecret_proof:
                raise GraphError(
                    100,
                    "API calls from the server require an appsecret_proof argument",
                    error_type="GraphMethodException",
                )
            return token
        message = value
        stamp = params.get("appsecret_time")
        if stamp is not None:
            # The newer form hashes "token|unix_time" and is only valid for a few minutes.
            if not stamp.isdigit() or abs(time.time() - int(stamp)) > APPSECRET_TIME_WINDOW:
                raise GraphError(
                    100,
                    "Invalid appsecret_time provided in the API argument",
                    error_type="GraphMethodException",
                )
            message = f"{value}|{stamp}"
        expected = hmac.new(self.app_secret.encode(), message.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(proof)):
            raise GraphError(
                100,
                "Invalid appsecret_proof provided in the API argument",
                error_type="GraphMethodException",
            )
        return token

    def _valid_token(self, value: str) -> Token:
        token = self._tokens.get(value)
        if token is None:
            raise GraphError(190, "Invalid OAuth access token - Cannot parse access token")
        if token.invalid is not None:
            raise token.invalid
        if token.revoked:
            raise GraphError(
                190,
                "Error validating access token: The user has not authorized application "
                f"{self.app_id}.",
                subcode=458,
            )
        now = self.now()
        if token.expires_at and token.expires_at <= now:
            raise GraphError(
                190,
                f"Error validating access token: Session has expired on "
                f"{facebook_time(token.expires_at)}. The current time is {facebook_time(now)}.",
                subcode=463,
            )
        return token

    def _issue_token(self, user_id: str, lifetime: int, kind: str = "USER") -> Token:
        now = int(self.now())
        value = "EAA" + secrets.token_urlsafe(96)  # Meta's user tokens start with "EAA"
        token = Token(value, user_id, kind, now, now + lifetime if lifetime else 0)
        self._tokens[value] = token
        return token

    def _access_token(self, params: JsonDict) -> JsonDict:
        if params.get("client_id") != self.app_id:
            raise GraphError(101, "Error validating application. Invalid application ID.")
        if params.get("client_secret") != self.app_secret:
            raise GraphError(1, "Error validating client secret.")
        grant_type = params.get("grant_type")
        if grant_type == "client_credentials":
            return {"access_token": f"{self.app_id}|{self.app_secret}", "token_type": "bearer"}
        if grant_type == "fb_exchange_token":
            short = self._valid_token(str(params.get("fb_exchange_token", "")))
            long_lived = self._issue_token(short.user_id, LONG_LIVED_SECONDS)
            return {
                "access_token": long_lived.value,
                "token_type": "bearer",
                "expires_in": LONG_LIVED_SECONDS,
            }

        code = self._codes.get(str(params.get("code", "")))
        if code is None:
            raise GraphError(100, "Invalid verification code format.")
        if code.used:
            # Single use: a replayed or retried exchange fails, it never returns a token twice.
            raise GraphError(100, "This authorization code has been used.", subcode=36009)
        if self.now() - code.issued_at > self.code_lifetime:
            raise GraphError(100, "This authorization code has expired.", subcode=36007)
        if params.get("redirect_uri") != code.redirect_uri:
            raise GraphError(
                100,
                "Error validating verification code. Please make sure your redirect_uri is "
                "identical to the one you used in the OAuth dialog request",
                subcode=36008,
            )
        code.used = True
        lifetime = secrets.choice(range(*SHORT_LIVED_SECONDS))
        token = self._issue_token(code.user_id, lifetime)
        return {"access_token": token.value, "token_type": "bearer", "expires_in": lifetime}

    def _debug_token(self, params: JsonDict) -> JsonDict:
        if params.get("access_token") != f"{self.app_id}|{self.app_secret}":
            raise GraphError(190, "Invalid OAuth access token signature.")
        value = params.get("input_token")
        if not value:
            raise GraphError(100, "(#100) The parameter input_token is required")
        token = self._tokens.get(str(value))
        if token is None:
            return {
                "data": {
                    "error": {"code": 190, "message": "Invalid OAuth access token."},
                    "is_valid": False,
                    "scopes": [],
                }
            }
        person = self._people[token.user_id]
        data: JsonDict = {
            "app_id": self.app_id,
            "type": token.kind,
            "application": self.app_name,
            "data_access_expires_at": int(person.active_at + DATA_ACCESS_SECONDS),
            "expires_at": token.expires_at,
            "is_valid": True,
            "issued_at": token.issued_at,
            "scopes": [],
            "user_id": token.user_id,
        }
        if token.kind == "PAGE":
            data["profile_id"] = token.page_id
        try:
            self._valid_token(token.value)
        except GraphError as error:
            data["is_valid"] = False
            data["error"] = {"code": error.code, "message": error.message}
            if error.subcode is not None:
                data["error"]["subcode"] = error.subcode
            return {"data": data}
        if person.consent.session_invalidated and token.kind == "USER":
            data["is_valid"] = False
            data["error"] = {
                "code": 190,
                "message": "Error validating access token: The session has been invalidated "
                "because the user changed their password or Facebook has changed the session "
                "for security reasons.",
                "subcode": 460,
            }
            return {"data": data}
        granted = [p for p, status in person.permissions.items() if status == "granted"]
        data["scopes"] = granted
        data["granular_scopes"] = [self._granular(person, scope) for scope in granted]
        return {"data": data}

    def _granular(self, person: Person, scope: str) -> JsonDict:
        entry: JsonDict = {"scope": scope}
        if scope in INSTAGRAM_SCOPES and person.selected_instagram is not None:
            entry["target_ids"] = sorted(person.selected_instagram)
            return entry
        if person.selected_pages is None:
            return entry  # no target_ids: all current and future Pages
        pages = [p for p in person.user.pages if p.id in person.selected_pages]
        if scope in PAGE_SCOPES:
            entry["target_ids"] = [p.id for p in pages]
        elif scope in INSTAGRAM_SCOPES:
            entry["target_ids"] = [p.instagram.id for p in pages if p.instagram is not None]
        return entry

    def _revoke(self, person: Person, permission: str | None) -> JsonDict:
        if permission is not None:
            person.permissions[permission] = "declined"
            return {"success": True}
        # The person removed the app: every token dies and Facebook forgets the grants.
        for token in self._tokens.values():
            if token.user_id == person.user.id:
                token.revoked = True
        person.permissions.clear()
        person.selected_pages = None
        person.selected_instagram = None
        self.revoked.append(person.user.id)
        return {"success": True}

    # -- what a person's token can see ----------------------------------------------------------

    @staticmethod
    def _granted(person: Person, permission: str) -> bool:
        return person.permissions.get(permission) == "granted"

    def _page_granted(self, person: Person, page: FbPage) -> bool:
        """The Page was ticked in the picker, and (since v17) a portfolio-owned Page also needs
        business_management."""
        selected = person.selected_pages is None or page.id in person.selected_pages
        return selected and (
            not page.business_owned or self._granted(person, "business_management")
        )

    def _visible_pages(self, person: Person) -> list[FbPage]:
        if not self._granted(person, "pages_show_list"):
            return []
        return [page for page in person.user.pages if self._page_granted(person, page)]

    def _reachable_page(self, person: Person, token: Token, node: str) -> FbPage | None:
        if token.kind == "PAGE":
            pages = [p for p in person.user.pages if p.id == token.page_id]
        else:
            pages = self._visible_pages(person)
        return next((page for page in pages if page.id == node), None)

    def _reachable_instagram(self, person: Person, token: Token, node: str) -> FbPage | None:
        """The Page through which this token reaches the IG User ``node``. Only an
        instagram_business_account is an IG User; a connected_instagram_account alone is not."""
        for page in person.user.pages:
            if page.instagram is None or page.instagram.id != node:
                continue
            if token.kind == "PAGE" and page.id == token.page_id:
                return page
            if token.kind == "USER" and self._page_granted(person, page):
                return page
        return None

    def _instagram_allowed(self, person: Person) -> bool:
        # The IG User node needs instagram_basic and pages_read_engagement.
        return self._granted(person, "instagram_basic") and self._granted(
            person, "pages_read_engagement"
        )

    # -- rendering ------------------------------------------------------------------------------

    def _render_user(self, person: Person, params: JsonDict) -> JsonDict:
        user = person.user
        values = {
            "id": user.id,
            "name": user.name,
            "first_name": user.name.split(" ")[0],
            "last_name": user.name.split(" ")[-1],
            "short_name": user.name.split(" ")[0],
        }
        result: JsonDict = {}
        for name, _ in parse_fields(params.get("fields", "id,name")):
            if name not in USER_FIELDS:
                raise nonexisting_field(name, "User")
            result[name] = values[name]
        result.setdefault("id", user.id)  # Graph always answers with the node's id
        return result

    def _render_instagram(
        self, account: IgAccount, fields: list[tuple[str, list[Any] | None]]
    ) -> JsonDict:
        values: JsonDict = {
            "id": account.id,
            "ig_id": int(re.sub(r"\D", "", account.id) or 0),
            "username": account.username,
            "name": account.name,
            "biography": account.biography,
            "followers_count": account.followers_count,
            "follows_count": account.follows_count,
            "media_count": account.media_count,
            "website": account.website,
            # Signed CDN URLs that expire (`oe`, hex unix time; a few days); never store them.
            "profile_picture_url": f"{self.base_url}/cdn/ig/{account.id}/profile.png?oe="
            + format(int(self.now()) + 3 * 86400, "x"),
        }
        result: JsonDict = {}
        for name, _ in fields:
            if name not in IG_FIELDS:
                raise nonexisting_field(name, "IGUser")
            if name in values and values[name] != "":
                result[name] = values[name]  # Graph leaves out empty fields
        result.setdefault("id", account.id)  # Graph always answers with the node's id
        return result

    def _render_page(
        self, page: FbPage, person: Person, token: Token, fields_spec: str
    ) -> JsonDict:
        result: JsonDict = {}
        for name, sub in parse_fields(fields_spec):
            if name not in PAGE_FIELDS:
                raise nonexisting_field(name, "Page")
            if name == "id":
                result["id"] = page.id
            elif name == "name":
                result["name"] = page.name
            elif name == "is_published":
                result["is_published"] = page.is_published
            elif name == "tasks":
                result["tasks"] = list(page.tasks)
            elif name == "category":
                result["category"] = "Digital creator"
            elif name == "access_token":
                result["access_token"] = self._page_token(token, page)
            else:
                account = page.instagram if name == "instagram_business_account" else None
                if name == "connected_instagram_account":
                    account = page.connected_instagram
                if account is None:
                    continue  # Graph omits a link that does not exist
                wanted = sub or [("id", None)]  # nested objects default to just their id
                if not self._instagram_allowed(person):
                    # Undocumented; the stand-in assumes the lenient reading: the link's id is
                    # visible, its details need instagram_basic.
                    wanted = [("id", None)]
                result[name] = self._render_instagram(account, wanted)
        result.setdefault("id", page.id)  # Graph always answers with the node's id
        return result

    def _page_token(self, token: Token, page: FbPage) -> str:
        key = (token.value, page.id)
        if key not in self._page_tokens:
            # Page tokens derived from a long-lived user token do not expire.
            lifetime = 0 if token.expires_at - token.issued_at >= LONG_LIVED_SECONDS else 3600
            page_token = self._issue_token(token.user_id, lifetime, kind="PAGE")
            page_token.page_id = page.id
            self._page_tokens[key] = page_token.value
        return self._page_tokens[key]

    def _accounts(
        self, request: CallRequest, person: Person, params: JsonDict, token: Token
    ) -> JsonDict:
        pages = self._visible_pages(person)
        fields_spec = params.get("fields", "access_token,category,name,id,tasks")
        return self._cursor_page(
            request,
            params,
            pages,
            lambda page: self._render_page(page, person, token, fields_spec),
            default_size=self.page_size,
            max_size=self.page_size,
        )

    def _cursor_page(
        self,
        request: CallRequest,
        params: JsonDict,
        items: Sequence[T],
        render: Callable[[T], JsonDict],
        *,
        default_size: int,
        max_size: int,
    ) -> JsonDict:
        """One page of `items` as Graph pages an edge: `limit`, `after` / `before` cursors, and
        absolute `next` / `previous` URLs carrying the original query (access token included)."""
        size = default_size
        if str(params.get("limit", "")).isdigit():
            size = max(1, min(int(params["limit"]), max_size))
        start = cursor_index(params["after"]) + 1 if params.get("after") else 0
        if params.get("before"):
            start = max(0, cursor_index(params["before"]) - size)
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

    # -- Instagram: insights, media, the CDN ----------------------------------------------------

    def _instagram_account(self, instagram_id: str) -> IgAccount | None:
        for person in self._people.values():
            for page in person.user.pages:
                if page.instagram is not None and page.instagram.id == instagram_id:
                    return page.instagram
        return None

    def _media(self, media_id: str) -> tuple[IgAccount, Post] | None:
        """The account a post belongs to, and the post (while it is still on the account)."""
        owner = self._media_owners.get(media_id)
        account = self._instagram_account(owner) if owner is not None else None
        if owner is None or account is None:
            return None
        post = next((p for p in self.instagram_data(owner).posts or [] if p.id == media_id), None)
        return (account, post) if post is not None else None

    def _instagram_edge(
        self,
        request: CallRequest,
        person: Person,
        token: Token,
        node: str,
        edges: list[str],
        params: JsonDict,
    ) -> JsonDict:
        ig_page = self._reachable_instagram(person, token, node)
        if ig_page is not None and ig_page.instagram is not None and len(edges) == 1:
            account = ig_page.instagram
            if not self._instagram_allowed(person):
                raise GraphError(10, "(#10) Application does not have permission for this action")
            if edges == ["media"]:
                return self._media_edge(request, account, params)
            if edges == ["insights"]:
                self._require_insights(person)
                data = self.instagram_data(account.id)
                return user_insights(account.id, data, account.followers_count, params, self.now())
            raise nonexisting_field(edges[0], "IGUser")
        owned = self._media(node)
        if owned is not None and self._reachable_instagram(person, token, owned[0].id):
            if not self._instagram_allowed(person):
                raise GraphError(10, "(#10) Application does not have permission for this action")
            if edges == ["insights"]:
                self._require_insights(person)
                return media_insights(owned[1], params)
            raise nonexisting_field(edges[0], "IGMedia")
        raise unsupported_get(node)

    def _require_insights(self, person: Person) -> None:
        if not self._granted(person, "instagram_manage_insights"):
            raise GraphError(10, "(#10) Application does not have permission for this action")

    def _media_edge(self, request: CallRequest, account: IgAccount, params: JsonDict) -> JsonDict:
        posts = sorted(
            self.instagram_data(account.id).posts or [], key=lambda p: p.timestamp, reverse=True
        )
        fields = [name for name, _ in parse_fields(params.get("fields", "id"))]
        return self._cursor_page(
            request,
            params,
            posts,
            lambda post: render_media(post, account.username, fields, self.base_url),
            default_size=MEDIA_PAGE_SIZE,
            max_size=MEDIA_PAGE_MAX,
        )

    def _cdn(self, parts: list[str], params: JsonDict) -> web.Response:
        """Instagram's CDN: profile pictures and media as small PNGs; a URL past its `oe`
        (expiry, hex unix time) is refused as the real CDN does."""
        expires = str(params.get("oe", ""))
        if expires:
            try:
                expired = int(expires, 16) < self.now()
            except ValueError:
                expired = True
            if expired:
                return web.Response(status=403, text="URL signature expired")
        seed = "/".join(parts[1:])
        return web.Response(body=png(seed), content_type="image/png")
