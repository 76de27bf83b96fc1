"""bot.health: a table of checks and what each means; Graph's errors sorted as §7 says."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.health import (
    BROKEN_REASONS,
    DISCONNECTING_REASONS,
    LOGIN_ONLY_OUTCOMES,
    CheckFacts,
    Expected,
    GraphProblem,
    HealthReason,
    HealthState,
    HealthVerdict,
    IgCheckFacts,
    ProblemKind,
    classify_error,
    classify_graph_error,
    judge,
    judge_instagram,
)
from bot.i18n import LANGUAGES, Texts
from bot.verdict import FetchFailure, Outcome

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
APP = "1234567890"
EXPECTED = Expected(
    page_id="p-1",
    instagram_id="ig-1",
    username="Lena.Paints",
    required_scopes=("instagram_basic", "instagram_manage_insights", "pages_show_list"),
    app_id=APP,
)


def at(delta: timedelta) -> int:
    return int((NOW + delta).timestamp())


def debug(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "app_id": APP,
        "type": "USER",
        "is_valid": True,
        "user_id": "fb-1",
        "expires_at": at(timedelta(days=50)),
        "data_access_expires_at": at(timedelta(days=80)),
        "scopes": ["public_profile", *EXPECTED.required_scopes],
    }
    data.update(changes)
    return data


def invalid(subcode: int | None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": 190, "message": "Error validating access token"}
    if subcode is not None:
        error["subcode"] = subcode
    return debug(is_valid=False, error=error)


def page(**changes: Any) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": "p-1",
        "is_published": True,
        "tasks": ["ANALYZE", "MANAGE"],
        "instagram_business_account": {"id": "ig-1", "username": "lena.paints"},
    }
    node.update(changes)
    return {k: v for k, v in node.items() if v is not None}


def problem(
    status: int | None, code: int | None, subcode: int | None = None, **extra: Any
) -> GraphProblem:
    error: dict[str, Any] = {"message": extra.pop("message", "x")}
    if code is not None:
        error["code"] = code
    if subcode is not None:
        error["error_subcode"] = subcode
    return classify_graph_error(status, {"error": error}, extra.pop("headers", None))


OUTAGE = problem(500, 2)
RATE_LIMITED = problem(400, 4)


@dataclass(frozen=True)
class Case:
    name: str
    facts: dict[str, Any]
    state: HealthState
    reason: HealthReason | None = None
    renewal_stage: int | None = None
    retry: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def facts(**changes: Any) -> CheckFacts:
    base: dict[str, Any] = {"expected": EXPECTED, "now": NOW, "debug": debug(), "page": page()}
    base.update(changes)
    return CheckFacts(**base)


S, R = HealthState, HealthReason
CASES = [
    Case("healthy", {}, S.HEALTHY),
    Case(
        "ended: app removed (deauthorize)", {"ended": R.APP_REMOVED}, S.DISCONNECTED, R.APP_REMOVED
    ),
    Case("ended: revoked", {"ended": R.REVOKED}, S.DISCONNECTED, R.REVOKED),
    Case("ended: forgotten", {"ended": R.FORGOTTEN}, S.DISCONNECTED, R.FORGOTTEN),
    # debug_token about the kept user token
    Case("190/458 app removed", {"debug": invalid(458)}, S.DISCONNECTED, R.APP_REMOVED),
    Case("190/460 password changed", {"debug": invalid(460)}, S.BROKEN, R.PASSWORD_CHANGED),
    Case("190/463 expired", {"debug": invalid(463)}, S.BROKEN, R.TOKEN_EXPIRED),
    Case("190/467 logged out", {"debug": invalid(467)}, S.BROKEN, R.TOKEN_INVALID),
    Case("190/493 inactive 90 days", {"debug": invalid(493)}, S.BROKEN, R.ACCESS_EXPIRED),
    Case("190 without subcode", {"debug": invalid(None)}, S.BROKEN, R.TOKEN_INVALID),
    Case("foreign app", {"debug": debug(app_id="666")}, S.BROKEN, R.TOKEN_INVALID),
    Case(
        "expires_at passed",
        {"debug": debug(expires_at=at(-timedelta(seconds=1)))},
        S.BROKEN,
        R.TOKEN_EXPIRED,
    ),
    Case(
        "data access passed (still valid)",
        {"debug": debug(data_access_expires_at=at(timedelta(0)))},
        S.BROKEN,
        R.ACCESS_EXPIRED,
    ),
    Case(
        "a permission removed",
        {"debug": debug(scopes=["pages_show_list", "instagram_basic"])},
        S.BROKEN,
        R.PERMISSIONS_DECLINED,
        extra={"declined": ("instagram_manage_insights",)},
    ),
    # debug_token about the kept Page token (the brand's reads use it): it does not expire
    # (expires_at 0), data access does; a bare 190 means its person lost the Page role.
    Case(
        "Page token: never expires, data access in 80 days",
        {"debug": debug(type="PAGE", expires_at=0), "page_token": True},
        S.HEALTHY,
        extra={"access_ends_at": NOW + timedelta(days=80)},
    ),
    Case(
        "Page token: data access in 10 days",
        {
            "debug": debug(
                type="PAGE", expires_at=0, data_access_expires_at=at(timedelta(days=10))
            ),
            "page_token": True,
        },
        S.RENEWAL_DUE,
        renewal_stage=14,
        extra={"access_ends_at": NOW + timedelta(days=10)},
    ),
    Case(
        "Page token: data access passed",
        {
            "debug": debug(type="PAGE", expires_at=0, data_access_expires_at=at(timedelta(0))),
            "page_token": True,
        },
        S.BROKEN,
        R.ACCESS_EXPIRED,
    ),
    Case(
        "Page token: data access not reported, the known date applies",
        {
            "debug": {k: v for k, v in debug(type="PAGE").items() if k != "data_access_expires_at"},
            "page_token": True,
            "known_data_access_expires_at": NOW + timedelta(days=3),
        },
        S.RENEWAL_DUE,
        renewal_stage=3,
        extra={"access_ends_at": NOW + timedelta(days=3)},
    ),
    Case(
        "Page token: 190 without subcode (role lost)",
        {"debug": invalid(None), "page_token": True},
        S.BROKEN,
        R.PAGE_ROLE_LOST,
    ),
    Case(
        "Page token: 190/460 password changed",
        {"debug": invalid(460), "page_token": True},
        S.BROKEN,
        R.PASSWORD_CHANGED,
    ),
    Case(
        "Page token: 190/467",
        {"debug": invalid(467), "page_token": True},
        S.BROKEN,
        R.TOKEN_INVALID,
    ),
    Case(
        "Page token: a permission removed",
        {"debug": debug(type="PAGE", expires_at=0, scopes=["instagram_basic"]), "page_token": True},
        S.BROKEN,
        R.PERMISSIONS_DECLINED,
        extra={"declined": ("instagram_manage_insights", "pages_show_list")},
    ),
    # the Page and its Instagram account
    Case("Page gone from /me/accounts", {"page": None}, S.BROKEN, R.PAGE_ROLE_LOST),
    Case("another Page returned", {"page": page(id="p-9")}, S.BROKEN, R.PAGE_ROLE_LOST),
    Case(
        "Page token dead (bare 190)",
        {"page": None, "page_problem": problem(400, 190)},
        S.BROKEN,
        R.PAGE_ROLE_LOST,
    ),
    Case(
        "Page not reachable (100/33)",
        {"page": None, "page_problem": problem(400, 100, 33)},
        S.BROKEN,
        R.PAGE_ROLE_LOST,
    ),
    Case(
        "Page read: password changed",
        {"page": None, "page_problem": problem(400, 190, 460)},
        S.BROKEN,
        R.PASSWORD_CHANGED,
    ),
    Case(
        "Page read: app removed",
        {"page": None, "page_problem": problem(400, 190, 458)},
        S.DISCONNECTED,
        R.APP_REMOVED,
    ),
    Case(
        "Page read: data access expired",
        {"page": None, "page_problem": problem(400, 190, 493)},
        S.BROKEN,
        R.ACCESS_EXPIRED,
    ),
    Case(
        "Page read: permission",
        {
            "page": None,
            "page_problem": problem(
                403, 200, message="(#200) Requires pages_read_engagement permission"
            ),
        },
        S.BROKEN,
        R.PERMISSIONS_DECLINED,
        extra={"declined": ("pages_read_engagement",)},
    ),
    Case("role reduced", {"page": page(tasks=["LIVE_CONTRIBUTOR"])}, S.BROKEN, R.PAGE_NO_ROLE),
    Case("Page unpublished", {"page": page(is_published=False)}, S.BROKEN, R.PAGE_UNPUBLISHED),
    Case(
        "Instagram unlinked",
        {"page": page(instagram_business_account=None)},
        S.BROKEN,
        R.INSTAGRAM_UNLINKED,
    ),
    Case(
        "Instagram half-linked",
        {
            "page": page(
                instagram_business_account=None,
                connected_instagram_account={"id": "ig-1", "username": "lena.paints"},
            )
        },
        S.BROKEN,
        R.IG_HALF_LINKED,
    ),
    Case(
        "another Instagram account on the Page",
        {"page": page(instagram_business_account={"id": "ig-2", "username": "brother"})},
        S.BROKEN,
        R.IG_OTHER_ACCOUNT,
        extra={"username": "brother"},
    ),
    Case(
        "username changed",
        {"page": page(instagram_business_account={"id": "ig-1", "username": "Lena.Draws"})},
        S.BROKEN,
        R.USERNAME_CHANGED,
        extra={"username": "lena.draws"},
    ),
    Case(
        "username changed (direct read)",
        {"instagram": {"id": "ig-1", "username": "lena.draws"}},
        S.BROKEN,
        R.USERNAME_CHANGED,
        extra={"username": "lena.draws"},
    ),
    Case(
        "Instagram node gone (100/33)",
        {"instagram_problem": problem(400, 100, 33)},
        S.BROKEN,
        R.INSTAGRAM_UNLINKED,
    ),
    Case(
        "Instagram read: permission (#10)",
        {"instagram_problem": problem(400, 10)},
        S.BROKEN,
        R.PERMISSIONS_DECLINED,
        extra={"declined": ()},
    ),
    # renewal
    Case(
        "data access in 14 days",
        {"debug": debug(data_access_expires_at=at(timedelta(days=14)))},
        S.RENEWAL_DUE,
        renewal_stage=14,
    ),
    Case(
        "data access in 14 days and a minute",
        {"debug": debug(data_access_expires_at=at(timedelta(days=14, minutes=1)))},
        S.HEALTHY,
    ),
    Case(
        "data access in 4 days",
        {"debug": debug(data_access_expires_at=at(timedelta(days=4)))},
        S.RENEWAL_DUE,
        renewal_stage=14,
    ),
    Case(
        "data access in 3 days",
        {"debug": debug(data_access_expires_at=at(timedelta(days=3)))},
        S.RENEWAL_DUE,
        renewal_stage=3,
    ),
    Case(
        "token expires first, in 2 days",
        {"debug": debug(expires_at=at(timedelta(days=2)))},
        S.RENEWAL_DUE,
        renewal_stage=3,
    ),
    Case(
        "never-expiring token (0) and no data access date",
        {"debug": debug(expires_at=0, data_access_expires_at=0)},
        S.HEALTHY,
    ),
    # retry later, state unchanged
    Case("debug_token outage", {"debug": None, "debug_problem": OUTAGE}, S.HEALTHY, retry=True),
    Case(
        "debug_token rate limited",
        {"debug": None, "debug_problem": RATE_LIMITED},
        S.HEALTHY,
        retry=True,
    ),
    Case("debug_token said nothing", {"debug": None}, S.HEALTHY, retry=True),
    Case("Page read outage", {"page": None, "page_problem": OUTAGE}, S.HEALTHY, retry=True),
    Case(
        "Page read rate limited (#32)",
        {"page": None, "page_problem": problem(400, 32)},
        S.HEALTHY,
        retry=True,
    ),
    Case(
        "Instagram read rate limited (#80002)",
        {"instagram_problem": problem(400, 80002)},
        S.HEALTHY,
        retry=True,
    ),
    Case(
        "Instagram read: no answer at all",
        {"instagram_problem": classify_error(code=None, subcode=None, http_status=None)},
        S.HEALTHY,
        retry=True,
    ),
    Case(
        "Page read: our bad request is not their breakage",
        {"page": None, "page_problem": problem(400, 100)},
        S.HEALTHY,
        retry=True,
    ),
    Case(
        "outage keeps a broken state",
        {
            "debug": None,
            "debug_problem": OUTAGE,
            "previous": S.BROKEN,
            "previous_reason": R.PAGE_UNPUBLISHED,
        },
        S.BROKEN,
        R.PAGE_UNPUBLISHED,
        retry=True,
    ),
    Case(
        "outage keeps renewal due",
        {"page": None, "page_problem": OUTAGE, "previous": S.RENEWAL_DUE},
        S.RENEWAL_DUE,
        retry=True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_judge(case: Case) -> None:
    verdict = judge(facts(**case.facts))
    assert (verdict.state, verdict.reason) == (case.state, case.reason)
    assert verdict.renewal_stage == case.renewal_stage
    assert (verdict.retry is not None) is case.retry
    for name, value in case.extra.items():
        assert getattr(verdict, name) == value, name


def test_every_reason_is_reachable() -> None:
    reached = {c.reason for c in CASES if c.reason is not None and not c.retry}
    # Only a connection made with Instagram Login can have this one (below).
    assert reached | {R.INSTAGRAM_NOT_PROFESSIONAL} == set(HealthReason)


def test_an_instagram_account_switched_to_personal_is_not_a_removed_permission() -> None:
    """Instagram refuses a personal account's insights with code 10, as a removed permission:
    /me's account_type decides."""
    personal = {"id": "1", "username": "anna.bakes", "account_type": "PERSONAL"}
    refused = GraphProblem(ProblemKind.PERMISSION, code=10)
    for problem in (None, refused):
        verdict = judge_instagram(IgCheckFacts("anna.bakes", me=personal, problem=problem))
        assert (verdict.state, verdict.reason) == (S.BROKEN, R.INSTAGRAM_NOT_PROFESSIONAL)
    for kind in ("BUSINESS", "MEDIA_CREATOR"):
        professional = {**personal, "account_type": kind}
        assert judge_instagram(IgCheckFacts("anna.bakes", me=professional)).state is S.HEALTHY
        declined = judge_instagram(IgCheckFacts("anna.bakes", me=professional, problem=refused))
        assert declined.reason is R.PERMISSIONS_DECLINED


def test_outages_and_rate_limits_never_break() -> None:
    problems = [OUTAGE, RATE_LIMITED, problem(429, None), problem(503, 100), problem(400, 613)]
    for each in problems:
        assert each.retryable
        for slot in ("debug", "page", "instagram"):
            previous = HealthVerdict(HealthState.RENEWAL_DUE)
            verdict = judge(facts(**{f"{slot}_problem": each}, previous=previous.state))
            assert verdict.state is HealthState.RENEWAL_DUE and verdict.retry is not None


def test_rate_limit_retry_follows_the_usage_header() -> None:
    headers = {
        "x-business-use-case-usage": '{"ig-1":[{"type":"instagram","call_count":100,'
        '"estimated_time_to_regain_access":42}]}'
    }
    limited = problem(400, 80002, headers=headers)
    assert limited.retry_after == timedelta(minutes=42)
    assert judge(facts(instagram_problem=limited)).retry == timedelta(minutes=42)
    assert judge(facts(page_problem=RATE_LIMITED)).retry == timedelta(hours=1)
    assert judge(facts(page_problem=OUTAGE)).retry == timedelta(minutes=15)
    assert problem(400, 4, headers={"X-Business-Use-Case-Usage": "not json"}).retry_after is None


def test_renewal_stages_follow_the_configured_leads() -> None:
    soon = debug(data_access_expires_at=at(timedelta(days=6)))
    assert judge(facts(debug=soon, renewal_lead_days=(7, 1))).renewal_stage == 7
    assert judge(facts(debug=soon, renewal_lead_days=(5,))).state is HealthState.HEALTHY
    verdict = judge(facts(debug=soon))
    assert verdict.access_ends_at == NOW + timedelta(days=6)


def test_naive_now_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="timezone"):
        judge(replace(facts(), now=datetime(2026, 6, 1)))  # noqa: DTZ001


@pytest.mark.parametrize(
    "garbage",
    [
        {"debug": "nope"},
        {"debug": debug(is_valid="true")},
        {"debug": debug(scopes="instagram_basic")},
        {"debug": debug(expires_at="soon", data_access_expires_at=True)},
        {"page": page(tasks="MANAGE", instagram_business_account=["ig-1"])},
        {"page": page(id=None, instagram_business_account={"id": 7})},
        {"instagram": {"id": None}},
    ],
)
def test_untrusted_shapes_never_raise(garbage: dict[str, Any]) -> None:
    assert isinstance(judge(facts(**garbage)), HealthVerdict)


@pytest.mark.parametrize(
    ("status", "code", "subcode", "message", "kind"),
    [
        (400, 190, 458, "", ProblemKind.APP_REMOVED),
        (400, 190, 460, "", ProblemKind.PASSWORD_CHANGED),
        (400, 190, 463, "", ProblemKind.TOKEN_EXPIRED),
        (400, 190, 467, "", ProblemKind.LOGGED_OUT),
        (400, 190, 493, "", ProblemKind.ACCESS_EXPIRED),
        (400, 190, None, "", ProblemKind.TOKEN_INVALID),
        (400, 102, None, "", ProblemKind.TOKEN_INVALID),
        (400, 10, None, "(#10) Application does not have permission", ProblemKind.PERMISSION),
        (403, 200, None, "(#200) Requires instagram_basic permission", ProblemKind.PERMISSION),
        (400, 299, None, "", ProblemKind.PERMISSION),
        (400, 4, None, "", ProblemKind.RATE_LIMITED),
        (400, 17, None, "", ProblemKind.RATE_LIMITED),
        (400, 32, None, "", ProblemKind.RATE_LIMITED),
        (400, 613, None, "", ProblemKind.RATE_LIMITED),
        (500, 4, None, "", ProblemKind.RATE_LIMITED),
        (400, 80001, None, "", ProblemKind.RATE_LIMITED),
        (400, 80002, None, "", ProblemKind.RATE_LIMITED),
        (429, None, None, "", ProblemKind.RATE_LIMITED),
        (500, 1, None, "", ProblemKind.TRANSIENT),
        (500, 2, None, "", ProblemKind.TRANSIENT),
        (500, -1, None, "", ProblemKind.TRANSIENT),
        (502, None, None, "", ProblemKind.TRANSIENT),
        (None, None, None, "", ProblemKind.TRANSIENT),
        (503, 100, None, "", ProblemKind.TRANSIENT),
        (400, 100, 33, "", ProblemKind.NOT_FOUND),
        (400, 100, None, "", ProblemKind.BAD_REQUEST),
        (400, 368, None, "", ProblemKind.POLICY),
        (400, 2500, None, "", ProblemKind.BAD_REQUEST),
    ],
)
def test_classify_graph_error(
    status: int | None, code: int | None, subcode: int | None, message: str, kind: ProblemKind
) -> None:
    found = problem(status, code, subcode, message=message)
    assert found.kind is kind
    assert (found.code, found.subcode, found.http_status) == (code, subcode, status)
    # The login's own classification agrees on what is Facebook's trouble.
    login = FetchFailure.from_graph_error(code, status)
    assert (login is FetchFailure.RATE_LIMITED) is (kind is ProblemKind.RATE_LIMITED) or (
        kind is ProblemKind.RATE_LIMITED and code in range(80003, 80010)
    )
    if kind is ProblemKind.TRANSIENT:
        assert login is FetchFailure.UNAVAILABLE


def test_classify_names_the_permission_and_survives_garbage() -> None:
    named = problem(403, 200, message="(#200) Requires instagram_manage_insights permission")
    assert named.permission == "instagram_manage_insights"
    assert problem(400, 10).permission is None
    for body in (None, "html", {"error": "x"}, {"error": {"code": "190", "error_subcode": "460"}}):
        assert isinstance(classify_graph_error(400, body), GraphProblem)
    assert classify_graph_error(400, {"error": {"code": "190", "error_subcode": "460"}}).kind is (
        ProblemKind.PASSWORD_CHANGED
    )
    assert classify_graph_error(502, "<html>Bad Gateway</html>").kind is ProblemKind.TRANSIENT


def test_reasons_mirror_the_login_verdict() -> None:
    """Reasons shared with the login verdict keep its values; the others are login-only."""
    shared = {o for o in Outcome if o.value in {r.value for r in HealthReason}}
    assert shared | LOGIN_ONLY_OUTCOMES == set(Outcome)
    assert not shared & LOGIN_ONLY_OUTCOMES
    assert set(HealthReason) == BROKEN_REASONS | DISCONNECTING_REASONS


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_broken_reason_has_texts_for_both_sides(language: str) -> None:
    t = Texts(language)  # type: ignore[arg-type]
    for reason in (*BROKEN_REASONS, HealthReason.APP_REMOVED):
        assert t.has(f"health.{reason}.reason"), reason
        assert t.has(f"health.{reason}.fix"), reason
        assert t.has(f"health.manager.{reason}"), reason
