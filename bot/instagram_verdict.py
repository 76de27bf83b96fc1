"""From what Instagram returned after one Instagram Login to a verdict: connected, or exactly why
not. The second path in (issue 13), beside Facebook Login's `bot.verdict`.

Pure: no I/O, no clock, no logging. `bot.instagram_login` gathers an `IgLoginEvidence` (the
redirect's parameters, how the code exchange went, the permissions it reported and the ``/me``
answer), `decide` judges it. Instagram's answers are untrusted JSON: wrong shapes never raise,
they count as absent.

Its own outcome enum rather than more members of `bot.verdict.Outcome`: most of that enum is
about Facebook Pages, which this path has none of, and code matching on `Outcome` (the health
reasons, the catalogs' ``verdict.*`` tables) would have to learn members that never occur on
its path. Where the meaning is the same, the value is the same ("connected", "cancelled",
"login_error", "login_expired"), so a catalog text can be shared; the others start with
``instagram_`` and collide with none of `Outcome`'s values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.graph_json import as_id, as_int, as_list, as_text
from bot.verdict import FetchFailure, normalize_handle


class IgOutcome(StrEnum):
    CONNECTED = "connected"
    CANCELLED = "cancelled"  # the person pressed Cancel / Not now in Instagram's window
    LOGIN_ERROR = "login_error"  # another redirect error, or a redirect without a code
    LOGIN_EXPIRED = "login_expired"  # the code was refused: used, expired, not found
    UNAVAILABLE = "instagram_unavailable"  # network, 5xx, an answer we cannot read
    RATE_LIMITED = "instagram_rate_limited"  # Instagram throttles the app or the account
    SCOPES_DECLINED = "instagram_scopes_declined"  # `declined` names them
    NOT_PROFESSIONAL = "instagram_not_professional"  # a personal account (account_type)
    OTHER_ACCOUNT = "instagram_other_account"  # logged in as `account`, not the invited one


# What ``/me`` answers as ``account_type`` for a professional account: Business, or Creator
# (``MEDIA_CREATOR``; ``CREATOR`` accepted too, it is what the app calls it).
PROFESSIONAL_ACCOUNT_TYPES: frozenset[str] = frozenset({"BUSINESS", "MEDIA_CREATOR", "CREATOR"})
# Only waiting helps, or nothing is wrong: another attempt done differently changes nothing.
_PERSON_CANNOT_FIX: frozenset[IgOutcome] = frozenset(
    {IgOutcome.CONNECTED, IgOutcome.UNAVAILABLE, IgOutcome.RATE_LIMITED}
)
_SCOPE_SEPARATORS = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class IgAccount:
    """The Instagram account that logged in, as ``/me`` described it."""

    id: str  # the app-scoped id (``/me`` ``id``; the code exchange's ``user_id``)
    # The professional account id (``/me`` ``user_id``, 1784...): the id the Facebook path and
    # webhooks use. None when /me left it out.
    user_id: str | None
    username: str  # normalised as `bot.verdict.normalize_handle` does
    account_type: str | None  # upper case; None when /me did not say
    followers_count: int | None = None
    media_count: int | None = None
    name: str | None = None

    @property
    def instagram_id(self) -> str:
        """The id to keep with a connection: the professional account id when known."""
        return self.user_id or self.id

    @property
    def professional(self) -> bool | None:
        """True for Business and Creator accounts, False for any other type Instagram names,
        None when it named none."""
        if self.account_type is None:
            return None
        return self.account_type in PROFESSIONAL_ACCOUNT_TYPES


@dataclass(frozen=True)
class IgLoginEvidence:
    """Everything Instagram told us about one login attempt.

    `redirect` is the callback's query; `failure` why the I/O layer could not complete (the
    exchange, the long-lived token or /me); `granted` the permissions the code exchange
    reported, as it reported them (a comma-separated string, or a list); `me` the ``/me``
    answer."""

    # Carries the code (single use, but a secret until used): never in a repr.
    redirect: Mapping[str, str] = field(repr=False)
    failure: FetchFailure | None = None
    granted: Any = ()
    me: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class IgVerdict:
    outcome: IgOutcome
    # The account that logged in, whenever /me was read (also for OTHER_ACCOUNT: it names it).
    account: IgAccount | None = None
    # SCOPES_DECLINED: the requested permissions not granted, in the order requested.
    declined: tuple[str, ...] = ()
    granted: tuple[str, ...] = ()

    @property
    def connected(self) -> bool:
        return self.outcome is IgOutcome.CONNECTED

    @property
    def other_account(self) -> str | None:
        """OTHER_ACCOUNT: the username that logged in instead of the invited one."""
        if self.outcome is IgOutcome.OTHER_ACCOUNT and self.account is not None:
            return self.account.username
        return None

    @property
    def person_can_fix(self) -> bool:
        """True when another attempt by the person, done differently, can succeed. False for
        CONNECTED (nothing to fix) and when Instagram is down or throttling (only waiting
        helps, nothing is lost)."""
        return self.outcome not in _PERSON_CANNOT_FIX


def parse_permissions(raw: Any) -> tuple[str, ...]:
    """The permissions of a code exchange in either documented shape: ``"a,b"`` (Business
    Login's page) or ``["a", "b"]`` (the endpoint's older reference); anything else: none."""
    if isinstance(raw, str):
        names: list[Any] = _SCOPE_SEPARATORS.split(raw)
    else:
        names = as_list(raw)
    found = (as_text(name) for name in names)
    return tuple(dict.fromkeys(name.strip().lower() for name in found if name is not None))


def parse_account(raw: Any) -> IgAccount | None:
    """``/me`` as an `IgAccount`; None without an id and a username (useless to us)."""
    if not isinstance(raw, Mapping):
        return None
    account_id = as_id(raw.get("id")) or as_id(raw.get("user_id"))
    username = as_text(raw.get("username"))
    if account_id is None or username is None:
        return None
    username = normalize_handle(username)
    if not username:
        return None
    account_type = as_text(raw.get("account_type"))
    return IgAccount(
        id=account_id,
        user_id=as_id(raw.get("user_id")),
        username=username,
        account_type=account_type.strip().upper() if account_type is not None else None,
        followers_count=_count(raw.get("followers_count")),
        media_count=_count(raw.get("media_count")),
        name=as_text(raw.get("name")),
    )


def decide(
    evidence: IgLoginEvidence, *, invited_handle: str, requested_scopes: Sequence[str]
) -> IgVerdict:
    """Judge one Instagram Login. The first step that applies decides:

    1. Redirect: `error=access_denied` → CANCELLED; any other `error`, or no `code`
       → LOGIN_ERROR.
    2. `failure`: CODE_REJECTED → LOGIN_EXPIRED; RATE_LIMITED → RATE_LIMITED; UNAVAILABLE
       → UNAVAILABLE.
    3. ``/me`` without an id and a username → UNAVAILABLE (Instagram answered, but not
       with the account: nothing the person can change).
    4. Another username than the invited one → OTHER_ACCOUNT, naming it: whatever else is
       wrong with that account does not matter.
    5. An `account_type` that is not Business or Creator → NOT_PROFESSIONAL (Instagram does
       not let a personal account use the API; the switch is made in the app). An absent
       `account_type` does not block: only Instagram's positive word does.
    6. A requested permission the exchange did not report as granted → SCOPES_DECLINED, the
       missing ones in requested order. No permissions reported at all counts as none granted.
    7. Otherwise CONNECTED.
    """
    redirect_outcome = _judge_redirect(evidence.redirect)
    if redirect_outcome is not None:
        return IgVerdict(redirect_outcome)

    granted = parse_permissions(evidence.granted)
    failure = evidence.failure
    if failure is not None:
        if failure == FetchFailure.CODE_REJECTED:
            return IgVerdict(IgOutcome.LOGIN_EXPIRED, granted=granted)
        if failure == FetchFailure.RATE_LIMITED:
            return IgVerdict(IgOutcome.RATE_LIMITED, granted=granted)
        return IgVerdict(IgOutcome.UNAVAILABLE, granted=granted)

    account = parse_account(evidence.me)
    if account is None:
        return IgVerdict(IgOutcome.UNAVAILABLE, granted=granted)

    def verdict(outcome: IgOutcome, declined: tuple[str, ...] = ()) -> IgVerdict:
        return IgVerdict(outcome, account=account, declined=declined, granted=granted)

    if account.username != normalize_handle(invited_handle):
        return verdict(IgOutcome.OTHER_ACCOUNT)
    if account.professional is False:
        return verdict(IgOutcome.NOT_PROFESSIONAL)
    requested = dict.fromkeys(s.strip().lower() for s in requested_scopes if s.strip())
    declined = tuple(scope for scope in requested if scope not in granted)
    if declined:
        return verdict(IgOutcome.SCOPES_DECLINED, declined)
    return verdict(IgOutcome.CONNECTED)


def _judge_redirect(redirect: Any) -> IgOutcome | None:
    if not isinstance(redirect, Mapping):
        return IgOutcome.LOGIN_ERROR
    error = as_text(redirect.get("error"))
    if error is not None:
        if error.strip().lower() == "access_denied":
            return IgOutcome.CANCELLED
        return IgOutcome.LOGIN_ERROR
    if as_text(redirect.get("code")) is None:
        return IgOutcome.LOGIN_ERROR
    return None


def _count(value: Any) -> int | None:
    number = as_int(value)
    return number if number is not None and number >= 0 else None
