"""From what one health check of a kept connection found to its health: healthy, renewal due,
broken (and exactly why), or disconnected; and Graph's errors sorted as meta-platform.md §7 says.

Pure: no I/O, no clock, no logging, like `bot.verdict`. The I/O layer reads `debug_token` for the
token the brand's reads use (the kept Page token; the user token for older connections without
one) and the connected Page (with its Instagram account) through Graph, gathers a `CheckFacts`,
and `judge` says what it means. Facebook's answers are untrusted JSON: wrong shapes
never raise, they count as absent. An outage or a rate limit is never a breakage: the verdict then
says "retry later" and keeps the state the connection had.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.graph_json import as_id, as_int, as_list, as_timestamp
from bot.verdict import (
    HTTP_SERVER_ERROR,
    HTTP_TOO_MANY_REQUESTS,
    RATE_LIMIT_CODES,
    TRANSIENT_CODES,
    USABLE_PAGE_TASKS,
    Outcome,
    normalize_handle,
)


class HealthState(StrEnum):
    HEALTHY = "healthy"
    RENEWAL_DUE = "renewal_due"  # access (see `judge`, step 11) ends within the renewal lead
    BROKEN = "broken"  # access is gone; the influencer can fix it (the reason says how)
    DISCONNECTED = "disconnected"  # ended on purpose: removed on Facebook, revoked, forgotten


class HealthReason(StrEnum):
    # Login verdict reasons that can also befall a kept connection (same values as `Outcome`,
    # so their texts in the catalogs can be shared).
    TOKEN_INVALID = Outcome.TOKEN_INVALID.value
    PERMISSIONS_DECLINED = Outcome.PERMISSIONS_DECLINED.value
    PAGE_NO_ROLE = Outcome.PAGE_NO_ROLE.value
    PAGE_UNPUBLISHED = Outcome.PAGE_UNPUBLISHED.value
    IG_HALF_LINKED = Outcome.IG_HALF_LINKED.value
    IG_OTHER_ACCOUNT = Outcome.IG_OTHER_ACCOUNT.value
    # Only a kept connection has these.
    PASSWORD_CHANGED = "password_changed"
    TOKEN_EXPIRED = "token_expired"
    ACCESS_EXPIRED = "access_expired"
    PAGE_ROLE_LOST = "page_role_lost"
    INSTAGRAM_UNLINKED = "instagram_unlinked"
    USERNAME_CHANGED = "username_changed"
    # An Instagram Login connection whose account was switched back to a personal one (same
    # value as the login verdict's `IgOutcome.NOT_PROFESSIONAL`).
    INSTAGRAM_NOT_PROFESSIONAL = "instagram_not_professional"
    # Disconnected.
    APP_REMOVED = "app_removed"
    REVOKED = "revoked"
    FORGOTTEN = "forgotten"


DISCONNECTING_REASONS: frozenset[HealthReason] = frozenset(
    {HealthReason.APP_REMOVED, HealthReason.REVOKED, HealthReason.FORGOTTEN}
)
BROKEN_REASONS: frozenset[HealthReason] = frozenset(HealthReason) - DISCONNECTING_REASONS
# Login verdict reasons a kept connection cannot have: they concern the dialog itself, or say
# "try again later" (an outage is a retry here, not a reason).
LOGIN_ONLY_OUTCOMES: frozenset[Outcome] = frozenset(
    {
        Outcome.CONNECTED,
        Outcome.CANCELLED,
        Outcome.APP_NOT_LIVE,
        Outcome.LOGIN_ERROR,
        Outcome.LOGIN_EXPIRED,
        Outcome.FACEBOOK_UNAVAILABLE,
        Outcome.NO_PAGE,
        Outcome.NO_PAGE_BUSINESS,
        Outcome.IG_NOT_SELECTED,
        Outcome.IG_NOT_LINKED,
    }
)

RENEWAL_LEAD_DAYS: tuple[int, ...] = (14, 3)
# When Graph is down or throttling without saying for how long.
OUTAGE_RETRY = timedelta(minutes=15)
RATE_LIMIT_RETRY = timedelta(hours=1)


# --- Graph's errors (meta-platform.md §7) ----------------------------------------------------


class ProblemKind(StrEnum):
    APP_REMOVED = "app_removed"  # 190 / 458 (also 461 reinstalled)
    PASSWORD_CHANGED = "password_changed"  # 190 / 460 (also 459 checkpoint, 464, 465)
    TOKEN_EXPIRED = "token_expired"  # 190 / 463
    LOGGED_OUT = "logged_out"  # 190 / 467
    ACCESS_EXPIRED = "access_expired"  # 190 / 493 or 468: 90 days without using the app
    TOKEN_INVALID = "token_invalid"  # 190 (and 102) otherwise: a Page token after role loss too
    PERMISSION = "permission"  # 10, 200-299: a permission missing or removed
    RATE_LIMITED = "rate_limited"  # 4, 17, 32, 613, 80001-80009, HTTP 429
    TRANSIENT = "transient"  # 1, 2, -1, 5xx, no answer at all
    NOT_FOUND = "not_found"  # 100 / 33: the object does not exist or cannot be reached
    POLICY = "policy"  # 368: blocked for a policy; tell the operator
    BAD_REQUEST = "bad_request"  # 100 and everything else: our bug or a replay; don't retry


_SUBCODE_KINDS: Mapping[int, ProblemKind] = {
    458: ProblemKind.APP_REMOVED,
    461: ProblemKind.APP_REMOVED,
    459: ProblemKind.PASSWORD_CHANGED,
    460: ProblemKind.PASSWORD_CHANGED,
    464: ProblemKind.PASSWORD_CHANGED,
    465: ProblemKind.PASSWORD_CHANGED,
    463: ProblemKind.TOKEN_EXPIRED,
    467: ProblemKind.LOGGED_OUT,
    468: ProblemKind.ACCESS_EXPIRED,
    493: ProblemKind.ACCESS_EXPIRED,
}
_TOKEN_CODES = frozenset({102, 190})
_PERMISSION_CODES = frozenset({10, *range(200, 300)})
_INSTAGRAM_RATE_LIMIT_CODES = frozenset(range(80001, 80010))  # Business Use Case limits
_UNKNOWN_ERROR_CODE = -1
_BAD_PARAMETER = 100
_NOT_FOUND_SUBCODE = 33
_POLICY_CODE = 368
_PERMISSION_RE = re.compile(
    r"\b((?:pages|instagram|business|ads|read|public)_[a-z_]*[a-z])\b", re.IGNORECASE
)


@dataclass(frozen=True)
class GraphProblem:
    kind: ProblemKind
    code: int | None = None
    subcode: int | None = None
    http_status: int | None = None
    permission: str | None = None  # named in a permission error's message, when it is
    retry_after: timedelta | None = None  # from the rate-limit headers, when they tell

    @property
    def retryable(self) -> bool:
        """Only waiting helps: Graph is down or throttling. Nothing about the connection."""
        return self.kind in (ProblemKind.TRANSIENT, ProblemKind.RATE_LIMITED)


def classify_graph_error(
    status: int | None, body: Any, headers: Mapping[str, str] | None = None
) -> GraphProblem:
    """Sort a failed Graph answer: its HTTP `status` (None: no answer at all), its JSON `body`
    (Graph's envelope ``{"error": {...}}``; anything else counts as no error detail) and, for
    rate limits, its `headers` (``X-Business-Use-Case-Usage`` says when access comes back)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    message = error.get("message")
    return classify_error(
        code=as_int(error.get("code")),
        subcode=as_int(error.get("error_subcode")),
        http_status=status,
        message=message if isinstance(message, str) else "",
        headers=headers,
    )


def classify_error(
    *,
    code: int | None,
    subcode: int | None,
    http_status: int | None,
    message: str = "",
    headers: Mapping[str, str] | None = None,
) -> GraphProblem:
    """The same from the parts (e.g. a `bot.graph.GraphError`'s code, subcode and status).

    Consistent with `bot.verdict.FetchFailure.from_graph_error`: rate-limit codes win over the
    status (Graph sends them with 400 as well as 5xx); no code at all, the transient codes and
    any 5xx mean Facebook is having trouble."""

    def problem(kind: ProblemKind, **extra: Any) -> GraphProblem:
        return GraphProblem(kind, code=code, subcode=subcode, http_status=http_status, **extra)

    if (
        code in RATE_LIMIT_CODES
        or code in _INSTAGRAM_RATE_LIMIT_CODES
        or http_status == HTTP_TOO_MANY_REQUESTS
    ):
        return problem(ProblemKind.RATE_LIMITED, retry_after=_regain_access(headers))
    if code in _TOKEN_CODES:
        kind = _SUBCODE_KINDS.get(subcode or 0, ProblemKind.TOKEN_INVALID)
        return problem(kind)
    if code in _PERMISSION_CODES:
        match = _PERMISSION_RE.search(message)
        return problem(ProblemKind.PERMISSION, permission=match.group(1) if match else None)
    if code is None or code in TRANSIENT_CODES or code == _UNKNOWN_ERROR_CODE:
        return problem(ProblemKind.TRANSIENT)
    if http_status is not None and http_status >= HTTP_SERVER_ERROR:
        return problem(ProblemKind.TRANSIENT)
    if code == _BAD_PARAMETER and subcode == _NOT_FOUND_SUBCODE:
        return problem(ProblemKind.NOT_FOUND)
    if code == _POLICY_CODE:
        return problem(ProblemKind.POLICY)
    return problem(ProblemKind.BAD_REQUEST)


def _regain_access(headers: Mapping[str, str] | None) -> timedelta | None:
    """The longest `estimated_time_to_regain_access` (minutes) in X-Business-Use-Case-Usage."""
    if not headers:
        return None
    raw = next((v for k, v in headers.items() if k.lower() == "x-business-use-case-usage"), None)
    if raw is None:
        return None
    try:
        usage = json.loads(raw)
    except ValueError:
        return None
    minutes = [
        entry.get("estimated_time_to_regain_access")
        for entries in (usage.values() if isinstance(usage, dict) else ())
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict)
    ]
    longest = max((m for m in minutes if isinstance(m, int) and not isinstance(m, bool)), default=0)
    return timedelta(minutes=longest) if longest > 0 else None


# --- the health verdict --------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What the connection was made with."""

    page_id: str
    instagram_id: str
    username: str
    required_scopes: tuple[str, ...]
    app_id: str


@dataclass(frozen=True)
class CheckFacts:
    """Everything one check found, as raw JSON-ish values.

    `debug` is debug_token's ``data`` for the checked token, or `debug_problem` why the call
    failed: the kept Page token when `page_token` is true (the brand's reads use it; from a
    long-lived user token it never expires, ``expires_at`` 0, but ``data_access_expires_at``
    still applies), else the user token (older connections, whose Page is found through it).
    `page` is the connected Page's node with ``is_published``, ``tasks`` and
    ``instagram_business_account{id,username}`` (``connected_instagram_account`` too), read
    with the Page token or found in /me/accounts; None when Graph did not return it (not in
    /me/accounts any more), or `page_problem` why the read failed. `instagram`, optional, is a
    direct read of the Instagram account node (``id,username``), or `instagram_problem`.
    `ended` is set when the connection was ended on purpose (revoked by a manager, forgotten,
    or the deauthorize callback said the app was removed). `previous` is the state before this
    check: a check that must be retried keeps it."""

    expected: Expected
    now: datetime
    debug: Mapping[str, Any] | None = None
    debug_problem: GraphProblem | None = None
    page: Mapping[str, Any] | None = None
    page_problem: GraphProblem | None = None
    instagram: Mapping[str, Any] | None = None
    instagram_problem: GraphProblem | None = None
    page_token: bool = False
    # Data access's end as last known (from the login or the last check): used when
    # debug_token of the Page token does not report it at all.
    known_data_access_expires_at: datetime | None = None
    ended: HealthReason | None = None
    previous: HealthState = HealthState.HEALTHY
    previous_reason: HealthReason | None = None
    renewal_lead_days: tuple[int, ...] = RENEWAL_LEAD_DAYS


@dataclass(frozen=True)
class HealthVerdict:
    state: HealthState
    reason: HealthReason | None = None
    # RENEWAL_DUE: the lead (in days, one of `renewal_lead_days`) whose window access is in, so
    # the influencer is asked once per stage (14, then 3).
    renewal_stage: int | None = None
    # Set when nothing could be judged (outage, rate limit): check again after this long; the
    # state and reason are the previous ones, unchanged.
    retry: timedelta | None = None
    declined: tuple[str, ...] = ()  # PERMISSIONS_DECLINED: the missing ones, when known
    username: str | None = None  # USERNAME_CHANGED / IG_OTHER_ACCOUNT: the account's name now
    # The earlier of the checked token's expiry and data access's expiry: with the Page token
    # checked (which does not expire), data access's.
    access_ends_at: datetime | None = None


def judge(facts: CheckFacts) -> HealthVerdict:
    """Judge one check. The first step that applies decides:

    1. `ended` → DISCONNECTED with that reason (app_removed, revoked, forgotten).
    2. debug_token failed, or said nothing → retry: it is called with the app token, so its
       failure says nothing about this connection.
    3. debug_token `is_valid` not true: by the error's subcode 458 → DISCONNECTED app_removed;
       460 → password_changed; 463 → token_expired; 493/468 → access_expired; 467 logged out
       → token_invalid; none → token_invalid for the user token, page_role_lost for the Page
       token (as a bare 190 on a Page read in 6). A foreign `app_id` → token_invalid.
    4. `expires_at` reached → token_expired; `data_access_expires_at` reached → access_expired.
       Both of the checked token: with the Page token checked, an expired user token (60 days)
       is no breakage, since nothing reads with it.
    5. A required scope missing from debug_token's `scopes` → permissions_declined.
    6. The Page read failed: outage / rate limit → retry; error 190 → by subcode as in 3, a bare
       190 (a Page token after role loss) → page_role_lost; a permission error →
       permissions_declined; not found → page_role_lost; anything else → retry (our bug, not
       theirs). The Page not returned → page_role_lost.
    7. `tasks` without a usable task → page_no_role; `is_published` false → page_unpublished.
    8. No instagram_business_account: the expected account only as connected_instagram_account
       → ig_half_linked, else instagram_unlinked; another account → ig_other_account.
    9. The Instagram read failed like the Page read (not found → instagram_unlinked).
    10. The username differs from the expected one → username_changed.
    11. Access (the earlier of the checked token's `expires_at`, 0 meaning never, and
        `data_access_expires_at`: with the Page token, data access's) ends within a renewal
        lead → RENEWAL_DUE at the smallest lead that applies; else HEALTHY.

    Raises ValueError only for a naive `now` (a caller bug, not bad evidence).
    """
    if facts.now.tzinfo is None or facts.now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now = facts.now.astimezone(UTC)
    expected = facts.expected

    if facts.ended is not None:
        return HealthVerdict(HealthState.DISCONNECTED, facts.ended)

    debug = facts.debug if isinstance(facts.debug, Mapping) else None
    if facts.debug_problem is not None or debug is None:
        return _retry(facts, facts.debug_problem)
    data_access = as_timestamp(debug.get("data_access_expires_at"))
    if facts.page_token and "data_access_expires_at" not in debug:
        # Data access belongs to the person's grant, not to a token: should debug_token not
        # report it for a Page token, the date last known still ends the access.
        data_access = facts.known_data_access_expires_at
    ends = _access_ends(as_timestamp(debug.get("expires_at")), data_access)

    if debug.get("is_valid") is not True:
        error = debug.get("error")
        subcode = as_int(error.get("subcode")) if isinstance(error, Mapping) else None
        kind = _SUBCODE_KINDS.get(subcode or 0, ProblemKind.TOKEN_INVALID)
        if facts.page_token and kind is ProblemKind.TOKEN_INVALID and subcode is None:
            # A Page token ended without a subcode: its person lost their role on the Page.
            return _broken(HealthReason.PAGE_ROLE_LOST, access_ends_at=ends)
        return _broken(_TOKEN_REASONS[kind], access_ends_at=ends)
    if as_id(debug.get("app_id")) != str(expected.app_id):
        return _broken(HealthReason.TOKEN_INVALID, access_ends_at=ends)
    expires_at = as_timestamp(debug.get("expires_at"))
    if expires_at is not None and expires_at <= now:
        return _broken(HealthReason.TOKEN_EXPIRED, access_ends_at=ends)
    if data_access is not None and data_access <= now:
        return _broken(HealthReason.ACCESS_EXPIRED, access_ends_at=ends)

    scopes = {s for s in as_list(debug.get("scopes")) if isinstance(s, str)}
    declined = tuple(dict.fromkeys(s for s in expected.required_scopes if s not in scopes))
    if declined:
        return _broken(HealthReason.PERMISSIONS_DECLINED, declined=declined, access_ends_at=ends)

    if facts.page_problem is not None:
        return _read_failed(facts, facts.page_problem, HealthReason.PAGE_ROLE_LOST, ends)
    page = facts.page if isinstance(facts.page, Mapping) else None
    if page is None or as_id(page.get("id")) not in (None, str(expected.page_id)):
        return _broken(HealthReason.PAGE_ROLE_LOST, access_ends_at=ends)

    raw_tasks = page.get("tasks")
    if isinstance(raw_tasks, list | tuple):
        tasks = {t.upper() for t in raw_tasks if isinstance(t, str)}
        if not tasks & USABLE_PAGE_TASKS:
            return _broken(HealthReason.PAGE_NO_ROLE, access_ends_at=ends)
    if page.get("is_published") is False:
        return _broken(HealthReason.PAGE_UNPUBLISHED, access_ends_at=ends)

    linked = _account(page.get("instagram_business_account"))
    if linked is None:
        half = _account(page.get("connected_instagram_account"))
        if half is not None and half[0] == str(expected.instagram_id):
            return _broken(HealthReason.IG_HALF_LINKED, access_ends_at=ends)
        return _broken(HealthReason.INSTAGRAM_UNLINKED, access_ends_at=ends)
    if linked[0] != str(expected.instagram_id):
        return _broken(HealthReason.IG_OTHER_ACCOUNT, username=linked[1], access_ends_at=ends)

    username = linked[1]
    if facts.instagram_problem is not None:
        return _read_failed(facts, facts.instagram_problem, HealthReason.INSTAGRAM_UNLINKED, ends)
    direct = _account(facts.instagram)
    if direct is not None:
        if direct[0] != str(expected.instagram_id):
            return _broken(HealthReason.IG_OTHER_ACCOUNT, username=direct[1], access_ends_at=ends)
        username = direct[1] or username
    if username and username != normalize_handle(expected.username):
        return _broken(HealthReason.USERNAME_CHANGED, username=username, access_ends_at=ends)

    if ends is not None:
        left = ends - now
        stages = [lead for lead in facts.renewal_lead_days if left <= timedelta(days=lead)]
        if stages:
            return HealthVerdict(
                HealthState.RENEWAL_DUE, renewal_stage=min(stages), access_ends_at=ends
            )
    return HealthVerdict(HealthState.HEALTHY, access_ends_at=ends)


_TOKEN_REASONS: Mapping[ProblemKind, HealthReason] = {
    ProblemKind.APP_REMOVED: HealthReason.APP_REMOVED,
    ProblemKind.PASSWORD_CHANGED: HealthReason.PASSWORD_CHANGED,
    ProblemKind.TOKEN_EXPIRED: HealthReason.TOKEN_EXPIRED,
    ProblemKind.ACCESS_EXPIRED: HealthReason.ACCESS_EXPIRED,
    ProblemKind.LOGGED_OUT: HealthReason.TOKEN_INVALID,
    ProblemKind.TOKEN_INVALID: HealthReason.TOKEN_INVALID,
}


def _broken(reason: HealthReason, **fields: Any) -> HealthVerdict:
    state = HealthState.DISCONNECTED if reason in DISCONNECTING_REASONS else HealthState.BROKEN
    return HealthVerdict(state, reason, **fields)


def _retry(facts: CheckFacts, problem: GraphProblem | None) -> HealthVerdict:
    wait = OUTAGE_RETRY
    if problem is not None and problem.kind is ProblemKind.RATE_LIMITED:
        wait = max(problem.retry_after or RATE_LIMIT_RETRY, OUTAGE_RETRY)
    return HealthVerdict(facts.previous, facts.previous_reason, retry=wait)


def _read_failed(
    facts: CheckFacts, problem: GraphProblem, not_found: HealthReason, ends: datetime | None
) -> HealthVerdict:
    if problem.kind is ProblemKind.TOKEN_INVALID:
        # A bare 190 on a read with the Page token while the user token is fine: the person
        # lost their role on the Page, which ends the Page token.
        return _broken(HealthReason.PAGE_ROLE_LOST, access_ends_at=ends)
    if problem.kind in _TOKEN_REASONS:
        return _broken(_TOKEN_REASONS[problem.kind], access_ends_at=ends)
    if problem.kind is ProblemKind.PERMISSION:
        declined = (problem.permission,) if problem.permission else ()
        return _broken(HealthReason.PERMISSIONS_DECLINED, declined=declined, access_ends_at=ends)
    if problem.kind is ProblemKind.NOT_FOUND:
        return _broken(not_found, access_ends_at=ends)
    # Outage, rate limit, and our own mistakes (a bad request, a policy block): never the
    # connection's fault.
    return _retry(facts, problem)


def _access_ends(*moments: datetime | None) -> datetime | None:
    return min((m for m in moments if m is not None), default=None)


def _account(raw: Any) -> tuple[str, str] | None:
    """(id, normalized username or "") of an Instagram account object, None without an id."""
    if not isinstance(raw, Mapping):
        return None
    account_id = as_id(raw.get("id"))
    if account_id is None:
        return None
    username = raw.get("username")
    return account_id, normalize_handle(username) if isinstance(username, str) else ""


# --- a connection made through Instagram Login (issue 13) -----------------------------------


@dataclass(frozen=True)
class IgCheckFacts:
    """What one check of an Instagram Login connection found. There is no debug_token and no
    Page on this path: the token is refreshed when due (`refreshed`: it was, this check) and
    ``/me`` is read with it (`me`), or `problem` says why the refresh or the read failed.
    `username` is the account's name as connected."""

    username: str
    me: Mapping[str, Any] | None = None
    problem: GraphProblem | None = None
    refreshed: bool = False
    previous: HealthState = HealthState.HEALTHY
    previous_reason: HealthReason | None = None


def judge_instagram(facts: IgCheckFacts) -> HealthVerdict:
    """Judge one check of an Instagram Login connection. Such a connection is never due for
    renewal: its token is refreshed before it runs out (`bot.upkeep`). The first that applies:

    0. ``/me`` says the account is personal now (switched back in the app) →
       instagram_not_professional: Instagram refuses such an account's insights with code 10,
       which would otherwise read as a removed permission.
    1. The refresh or the read failed with error 190: by subcode as `judge` step 3 (458 →
       DISCONNECTED app_removed: the app removed in Instagram's settings, which sends no
       callback; 460 → password_changed; 463 → token_expired; otherwise token_invalid).
    2. A permission error → permissions_declined (the permission named, when it is).
    3. Any other failure (outage, rate limit, a refusal that is no verdict on the token such as
       "too young to refresh") → retry, the state unchanged; after a successful refresh the
       check counts (the new token is kept) and the state stays as it was.
    4. The username differs from the connected one → username_changed.
    5. Otherwise HEALTHY.
    """
    problem = facts.problem
    if is_personal(facts.me):
        return _broken(HealthReason.INSTAGRAM_NOT_PROFESSIONAL)
    if problem is not None:
        if problem.kind in _TOKEN_REASONS:
            return _broken(_TOKEN_REASONS[problem.kind])
        if problem.kind is ProblemKind.PERMISSION:
            declined = (problem.permission,) if problem.permission else ()
            return _broken(HealthReason.PERMISSIONS_DECLINED, declined=declined)
        if facts.refreshed:
            return HealthVerdict(facts.previous, facts.previous_reason)
        return _retry_ig(facts, problem)
    me = facts.me if isinstance(facts.me, Mapping) else None
    if me is None:
        return _retry_ig(facts, None)
    raw = me.get("username")
    username = normalize_handle(raw) if isinstance(raw, str) else ""
    if username and username != normalize_handle(facts.username):
        return _broken(HealthReason.USERNAME_CHANGED, username=username)
    return HealthVerdict(HealthState.HEALTHY)


def is_personal(me: Mapping[str, Any] | None) -> bool:
    """``/me`` of Instagram Login answers ``account_type`` PERSONAL for an account that is no
    longer professional (Business is BUSINESS, Creator MEDIA_CREATOR)."""
    return isinstance(me, Mapping) and me.get("account_type") == "PERSONAL"


def _retry_ig(facts: IgCheckFacts, problem: GraphProblem | None) -> HealthVerdict:
    wait = OUTAGE_RETRY
    if problem is not None and problem.kind is ProblemKind.RATE_LIMITED:
        wait = max(problem.retry_after or RATE_LIMIT_RETRY, OUTAGE_RETRY)
    return HealthVerdict(facts.previous, facts.previous_reason, retry=wait)
