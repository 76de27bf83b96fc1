"""From what Facebook returned after one login to a verdict: connected, or exactly why not.

Pure: no I/O, no clock, no logging. The I/O layer gathers a `LoginEvidence`, `decide` judges it.
Facebook's answers are treated as untrusted JSON: wrong shapes never raise, they count as absent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.graph_json import as_id, as_list, as_text, as_timestamp


class Outcome(StrEnum):
    CONNECTED = "connected"
    CANCELLED = "cancelled"
    APP_NOT_LIVE = "app_not_live"
    LOGIN_ERROR = "login_error"
    LOGIN_EXPIRED = "login_expired"
    FACEBOOK_UNAVAILABLE = "facebook_unavailable"
    TOKEN_INVALID = "token_invalid"
    PERMISSIONS_DECLINED = "permissions_declined"
    NO_PAGE = "no_page"
    NO_PAGE_BUSINESS = "no_page_business"
    PAGE_NO_ROLE = "page_no_role"
    PAGE_UNPUBLISHED = "page_unpublished"
    IG_NOT_SELECTED = "ig_not_selected"
    IG_HALF_LINKED = "ig_half_linked"
    IG_OTHER_ACCOUNT = "ig_other_account"
    IG_NOT_LINKED = "ig_not_linked"


RATE_LIMIT_CODES: frozenset[int] = frozenset({4, 17, 32, 613, 80001, 80002})
TRANSIENT_CODES: frozenset[int] = frozenset({1, 2})
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500


class FetchFailure(StrEnum):
    """Why the I/O layer could not complete the Graph calls (meta-platform.md §7)."""

    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    CODE_REJECTED = "code_rejected"

    @classmethod
    def from_graph_error(cls, code: int | None, http_status: int | None) -> FetchFailure:
        """Classify a failed Graph call by its error `code` and HTTP status.

        Rate-limit codes win over the status, because Graph sends them with 400 as well as 5xx.
        No code at all (network error, an HTML error page) and any 5xx mean Facebook is having
        trouble, not that our code was bad. Everything else (100 "code already used", 190, ...)
        means the code will never work again: a second exchange must not be attempted.
        """
        if code in RATE_LIMIT_CODES or http_status == HTTP_TOO_MANY_REQUESTS:
            return cls.RATE_LIMITED
        if code is None or code in TRANSIENT_CODES:
            return cls.UNAVAILABLE
        if http_status is not None and http_status >= HTTP_SERVER_ERROR:
            return cls.UNAVAILABLE
        return cls.CODE_REJECTED


@dataclass(frozen=True)
class InstagramInfo:
    id: str
    username: str
    # As the Page's listing gave it (`instagram_business_account{...,followers_count}`): for the
    # messages only, never part of a decision.
    followers_count: int | None = None


@dataclass(frozen=True)
class PageInfo:
    id: str
    name: str
    is_published: bool
    tasks: tuple[str, ...]
    # The Page's access token, as /me/accounts gave it with the pages (`bot.graph.PAGE_FIELDS`):
    # kept, sealed, with the connection. A secret: never in a repr, and no part of a decision.
    access_token: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class LoginEvidence:
    """Everything Facebook told us about one login attempt, as raw JSON-ish values."""

    redirect: Mapping[str, str]
    fetch_failure: FetchFailure | None = None
    debug: Mapping[str, Any] | None = None
    permissions: Sequence[Mapping[str, Any]] = ()
    # Each Page carries its access token: never in a repr.
    pages: Sequence[Mapping[str, Any]] = field(default=(), repr=False)


_PERSON_CANNOT_FIX: frozenset[Outcome] = frozenset(
    {
        Outcome.CONNECTED,
        Outcome.APP_NOT_LIVE,
        Outcome.FACEBOOK_UNAVAILABLE,
        Outcome.TOKEN_INVALID,
    }
)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    declined: tuple[str, ...] = ()
    other_accounts: tuple[str, ...] = ()
    # IG_OTHER_ACCOUNT: each shared Page linked to another account, as (Page name, username),
    # so the person knows which Page to fix.
    other_pages: tuple[tuple[str, str], ...] = ()
    page: PageInfo | None = None
    instagram: InstagramInfo | None = None
    facebook_user_id: str | None = None
    expires_at: datetime | None = None
    data_access_expires_at: datetime | None = None
    granted: tuple[str, ...] = ()

    @property
    def connected(self) -> bool:
        return self.outcome is Outcome.CONNECTED

    @property
    def needs_rerequest(self) -> bool:
        """The next dialog must carry auth_type=rerequest: Facebook never re-asks otherwise."""
        return self.outcome is Outcome.PERMISSIONS_DECLINED

    @property
    def person_can_fix(self) -> bool:
        """True when another attempt by the person, done differently, can succeed.

        False for CONNECTED (nothing to fix), APP_NOT_LIVE (the operator must publish the app),
        FACEBOOK_UNAVAILABLE (only waiting helps) and TOKEN_INVALID: a token fresh from the
        dialog that fails verification (foreign app id, already expired) is a configuration
        problem or tampering, never something the person clicked.
        """
        return self.outcome not in _PERSON_CANNOT_FIX


_HANDLE_RE = re.compile(r"[a-z0-9._]{1,30}")


# A profile address as people copy it from the app or the browser: instagram.com/name,
# https://www.instagram.com/name/?igsh=… , or one of the profile's tabs (…/name/reels/); a
# post's /p/… is not a profile.
_PROFILE_URL_RE = re.compile(
    r"(?:https?://)?(?:www\.|m\.)?(?:instagram\.com|instagr\.am)/([^/?#\s]+)"
    r"(?:/(?:reels|tagged|guides|saved|followers|following|channel))?/?(?:[?#]\S*)?",
    re.IGNORECASE,
)


def normalize_handle(handle: str) -> str:
    """Instagram usernames are case-insensitive and people paste them with '@' or as the
    address of the profile."""
    handle = handle.strip()
    profile = _PROFILE_URL_RE.fullmatch(handle)
    if profile is not None:
        handle = profile.group(1)
    return handle.removeprefix("@").lower()


def is_valid_handle(handle: str) -> bool:
    """Whether `handle`, as the manager typed it, names an Instagram username. One "@" in front
    is how people write it; "@@fritz" is a typo (usernames have no "@"), not fritz."""
    name = normalize_handle(handle)
    return (
        _HANDLE_RE.fullmatch(name) is not None
        and not name.startswith(".")
        and not name.endswith(".")
        and ".." not in name
    )


BUSINESS_MANAGEMENT = "business_management"
# Either one scoped to other accounts means the invited account cannot be read.
INSTAGRAM_SCOPES: tuple[str, ...] = ("instagram_basic", "instagram_manage_insights")
# Each of these can carry instagram_basic / instagram_manage_insights; Live Contributor cannot.
USABLE_PAGE_TASKS: frozenset[str] = frozenset(
    {"MANAGE", "CREATE_CONTENT", "MODERATE", "ADVERTISE", "ANALYZE"}
)
# Meta's "Development mode / cannot grant" answer, seen in practice alongside access_denied.
APP_NOT_LIVE_ERROR_CODE = "200"


def decide(
    evidence: LoginEvidence,
    *,
    invited_handle: str,
    required_scopes: Sequence[str],
    app_id: str,
    now: datetime,
    keep_page_id: str | None = None,
) -> Verdict:
    """Judge one login attempt. The first step that applies decides:

    1. Redirect: `error=access_denied` with `error_code=200` → APP_NOT_LIVE; `access_denied`
       → CANCELLED; any other `error` → LOGIN_ERROR; neither `code` nor `error` → LOGIN_ERROR.
    2. `fetch_failure`: CODE_REJECTED → LOGIN_EXPIRED; UNAVAILABLE / RATE_LIMITED
       → FACEBOOK_UNAVAILABLE.
    3. debug_token: missing, `is_valid` not true, `app_id` not ours, `expires_at` or
       `data_access_expires_at` reached (0 means never) → TOKEN_INVALID.
    4. A required scope not "granted" in /me/permissions → PERMISSIONS_DECLINED, the missing
       ones in required order. /me/permissions is the truth, not debug_token's `scopes`.
    5. No Page → NO_PAGE_BUSINESS without business_management (v17+ hides portfolio-owned
       Pages), else NO_PAGE.
    6. A Page whose instagram_business_account is the invited handle: the Instagram grant
       scoped to other accounts → IG_NOT_SELECTED; `is_published` false → PAGE_UNPUBLISHED;
       `tasks` without a usable task → PAGE_NO_ROLE; else CONNECTED. Several such Pages: one
       that passes wins, otherwise the first one's failure is reported. A renewal names the
       Page it keeps (`keep_page_id`): when the invited account is on that Page, that Page's
       verdict is the one, pass or fail (a renewal keeps its Page, or says what is wrong
       with it).
    7. The invited handle only as connected_instagram_account on a Page with no
       instagram_business_account → IG_HALF_LINKED.
    8. Some Page has an instagram_business_account → IG_OTHER_ACCOUNT, naming them.
    9. Otherwise IG_NOT_LINKED.

    Page checks fail only on Facebook's positive word: a missing `is_published` or `tasks`
    (Facebook omits fields it was not asked for) does not block, `tasks: []` does.
    Token details (user id, expiries, granted) are filled on every outcome when known, except
    when debug_token names another app (or none): that user id would not be one of ours.

    Raises ValueError only for a naive `now` (a caller bug, not bad evidence).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)

    details = _token_details(evidence, app_id=app_id)

    redirect_outcome = _judge_redirect(evidence.redirect)
    if redirect_outcome is not None:
        return details.verdict(redirect_outcome)

    if evidence.fetch_failure is not None:
        if evidence.fetch_failure == FetchFailure.CODE_REJECTED:
            return details.verdict(Outcome.LOGIN_EXPIRED)
        return details.verdict(Outcome.FACEBOOK_UNAVAILABLE)

    if not _token_is_valid(evidence.debug, app_id=app_id, now=now):
        return details.verdict(Outcome.TOKEN_INVALID)

    granted = set(details.granted)
    declined = tuple(scope for scope in _unique(required_scopes) if scope not in granted)
    if declined:
        return details.verdict(Outcome.PERMISSIONS_DECLINED, declined=declined)

    pages = [page for page in map(_parse_page, as_list(evidence.pages)) if page is not None]
    if not pages:
        if BUSINESS_MANAGEMENT in granted:
            return details.verdict(Outcome.NO_PAGE)
        return details.verdict(Outcome.NO_PAGE_BUSINESS)

    invited = normalize_handle(invited_handle)
    instagram_targets = _instagram_targets(evidence.debug)

    verdicts = [
        details.verdict(
            _judge_page(page, page.business, instagram_targets),
            page=page.info,
            instagram=page.business,
        )
        for page in pages
        if page.business is not None and page.business.username == invited
    ]
    kept = [v for v in verdicts if v.page is not None and v.page.id == keep_page_id]
    if kept:
        return kept[0]
    if verdicts:
        return next((v for v in verdicts if v.connected), verdicts[0])

    for page in pages:
        if page.business is None and page.connected and page.connected.username == invited:
            return details.verdict(Outcome.IG_HALF_LINKED, page=page.info, instagram=page.connected)

    others = sorted({page.business.username for page in pages if page.business is not None})
    if others:
        other_pages = tuple(
            (page.info.name or page.info.id, page.business.username)
            for page in pages
            if page.business is not None
        )
        return details.verdict(
            Outcome.IG_OTHER_ACCOUNT, other_accounts=tuple(others), other_pages=other_pages
        )

    return details.verdict(Outcome.IG_NOT_LINKED)


@dataclass(frozen=True)
class _TokenDetails:
    facebook_user_id: str | None = None
    expires_at: datetime | None = None
    data_access_expires_at: datetime | None = None
    granted: tuple[str, ...] = ()

    def verdict(self, outcome: Outcome, **fields: Any) -> Verdict:
        return Verdict(
            outcome,
            facebook_user_id=self.facebook_user_id,
            expires_at=self.expires_at,
            data_access_expires_at=self.data_access_expires_at,
            granted=self.granted,
            **fields,
        )


@dataclass(frozen=True)
class _Page:
    info: PageInfo
    # None when Facebook did not report tasks at all (unknown, not "no role").
    tasks: frozenset[str] | None
    business: InstagramInfo | None
    connected: InstagramInfo | None


def _token_details(evidence: LoginEvidence, *, app_id: str) -> _TokenDetails:
    debug = evidence.debug if isinstance(evidence.debug, Mapping) else None
    if debug is not None and as_id(debug.get("app_id")) != str(app_id):
        # Not provably our app's token: its app-scoped user id would point at a stranger.
        return _TokenDetails()
    granted = tuple(sorted(_granted_permissions(evidence.permissions)))
    if debug is None:
        return _TokenDetails(granted=granted)
    return _TokenDetails(
        facebook_user_id=as_id(debug.get("user_id")),
        expires_at=as_timestamp(debug.get("expires_at")),
        data_access_expires_at=as_timestamp(debug.get("data_access_expires_at")),
        granted=granted,
    )


def _judge_redirect(redirect: Any) -> Outcome | None:
    if not isinstance(redirect, Mapping):
        return Outcome.LOGIN_ERROR
    error = as_text(redirect.get("error"))
    if error is not None:
        if error.lower() != "access_denied":
            return Outcome.LOGIN_ERROR
        if as_id(redirect.get("error_code")) == APP_NOT_LIVE_ERROR_CODE:
            return Outcome.APP_NOT_LIVE
        return Outcome.CANCELLED
    if as_text(redirect.get("code")) is None:
        return Outcome.LOGIN_ERROR
    return None


def _token_is_valid(debug: Any, *, app_id: str, now: datetime) -> bool:
    if not isinstance(debug, Mapping):
        return False
    if debug.get("is_valid") is not True:
        return False
    if as_id(debug.get("app_id")) != str(app_id):
        return False
    for key in ("expires_at", "data_access_expires_at"):
        moment = as_timestamp(debug.get(key))
        if moment is not None and moment <= now:
            return False
    return True


def _granted_permissions(permissions: Any) -> set[str]:
    granted: set[str] = set()
    for entry in as_list(permissions):
        if not isinstance(entry, Mapping):
            continue
        name = as_text(entry.get("permission"))
        status = as_text(entry.get("status"))
        if name is not None and status is not None and status.lower() == "granted":
            granted.add(name)
    return granted


def _instagram_targets(debug: Any) -> frozenset[str] | None:
    """The Instagram account ids the Instagram grants are limited to, or None for all.

    Facebook leaves `target_ids` out when the grant covers all current and future accounts; an
    empty list is read the same way, since no real dialog can grant a scope for nothing.
    """
    if not isinstance(debug, Mapping):
        return None
    targets: set[str] | None = None
    for entry in as_list(debug.get("granular_scopes")):
        if not isinstance(entry, Mapping) or entry.get("scope") not in INSTAGRAM_SCOPES:
            continue
        ids = {i for i in map(as_id, as_list(entry.get("target_ids"))) if i is not None}
        if ids:
            targets = ids if targets is None else targets & ids
    return None if targets is None else frozenset(targets)


def _judge_page(
    page: _Page, instagram: InstagramInfo, instagram_targets: frozenset[str] | None
) -> Outcome:
    if instagram_targets is not None and instagram.id not in instagram_targets:
        return Outcome.IG_NOT_SELECTED
    if not page.info.is_published:
        return Outcome.PAGE_UNPUBLISHED
    if page.tasks is not None and not page.tasks & USABLE_PAGE_TASKS:
        return Outcome.PAGE_NO_ROLE
    return Outcome.CONNECTED


def _parse_page(raw: Any) -> _Page | None:
    if not isinstance(raw, Mapping):
        return None
    page_id = as_id(raw.get("id"))
    if page_id is None:
        return None
    raw_tasks = raw.get("tasks")
    tasks: frozenset[str] | None = None
    if isinstance(raw_tasks, list | tuple):
        tasks = frozenset(t.upper() for t in raw_tasks if isinstance(t, str))
    published = raw.get("is_published")
    info = PageInfo(
        id=page_id,
        name=as_text(raw.get("name")) or "",
        is_published=published if isinstance(published, bool) else True,
        tasks=tuple(sorted(tasks or ())),
        access_token=as_text(raw.get("access_token")),
    )
    return _Page(
        info=info,
        tasks=tasks,
        business=_parse_instagram(raw.get("instagram_business_account")),
        connected=_parse_instagram(raw.get("connected_instagram_account")),
    )


def _parse_instagram(raw: Any) -> InstagramInfo | None:
    """An account without both id and username is useless to us and counts as absent."""
    if not isinstance(raw, Mapping):
        return None
    account_id = as_id(raw.get("id"))
    username = as_text(raw.get("username"))
    if account_id is None or username is None:
        return None
    username = normalize_handle(username)
    if not username:
        return None
    followers = raw.get("followers_count")
    return InstagramInfo(
        id=account_id,
        username=username,
        followers_count=followers if type(followers) is int and followers >= 0 else None,
    )


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
