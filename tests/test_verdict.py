from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.verdict import (
    FetchFailure,
    LoginEvidence,
    Outcome,
    Verdict,
    decide,
    is_valid_handle,
    normalize_handle,
)

APP_ID = "1234567890"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LATER = int((NOW + timedelta(days=60)).timestamp())
MUCH_LATER = int((NOW + timedelta(days=90)).timestamp())
EARLIER = int((NOW - timedelta(seconds=1)).timestamp())
HANDLE = "shop.gram"
REQUIRED = (
    "instagram_basic",
    "instagram_manage_insights",
    "pages_show_list",
    "pages_read_engagement",
)
OK_REDIRECT = {"code": "AQD-code"}
DROP = object()  # a builder override that removes the key, as Facebook does with unasked fields


def _apply(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if value is DROP:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def debug(**overrides: Any) -> dict[str, Any]:
    base = {
        "app_id": APP_ID,
        "type": "USER",
        "is_valid": True,
        "user_id": "10160000000000001",
        "expires_at": LATER,
        "data_access_expires_at": MUCH_LATER,
        "scopes": [*REQUIRED, "business_management"],
        "granular_scopes": [{"scope": "pages_show_list"}, {"scope": "instagram_basic"}],
    }
    return _apply(base, overrides)


def granular(scope: str, *target_ids: Any) -> dict[str, Any]:
    return {"scope": scope, "target_ids": list(target_ids)}


def perms(*granted: str, declined: Sequence[str] = (), expired: Sequence[str] = ()) -> list[Any]:
    return [
        *({"permission": p, "status": "granted"} for p in granted),
        *({"permission": p, "status": "declined"} for p in declined),
        *({"permission": p, "status": "expired"} for p in expired),
    ]


ALL_GRANTED = perms(*REQUIRED, "business_management")


def ig(username: str, ig_id: str | None = None) -> dict[str, Any]:
    return {"id": ig_id or f"ig-{username.lower()}", "username": username}


SHOP_IG = ig(HANDLE, "17841400000000001")


def page(page_id: str = "p1", **overrides: Any) -> dict[str, Any]:
    base = {"id": page_id, "name": f"Page {page_id}", "is_published": True, "tasks": ["MANAGE"]}
    return _apply(base, overrides)


def evidence(
    *,
    redirect: Any = OK_REDIRECT,
    fetch_failure: FetchFailure | None = None,
    debug_data: Any = DROP,
    permissions: Any = ALL_GRANTED,
    pages: Any = DROP,
) -> LoginEvidence:
    return LoginEvidence(
        redirect=redirect,
        fetch_failure=fetch_failure,
        debug=debug() if debug_data is DROP else debug_data,
        permissions=permissions,
        pages=[page(instagram_business_account=SHOP_IG)] if pages is DROP else pages,
    )


def judge(ev: LoginEvidence, handle: str = HANDLE) -> Verdict:
    return decide(ev, invited_handle=handle, required_scopes=REQUIRED, app_id=APP_ID, now=NOW)


def summary(verdict: Verdict) -> dict[str, Any]:
    return {
        "outcome": verdict.outcome,
        "declined": verdict.declined,
        "other_accounts": verdict.other_accounts,
        "page": verdict.page.id if verdict.page else None,
        "instagram": verdict.instagram.id if verdict.instagram else None,
    }


def row(
    ev: LoginEvidence, outcome: Outcome, *, id: str, handle: str = HANDLE, **expected: Any
) -> Any:
    return pytest.param(ev, handle, {"outcome": outcome, **expected}, id=id)


SHOP_ID = SHOP_IG["id"]

DECISIONS = [
    # 1. the redirect
    row(
        evidence(
            redirect={
                "error": "access_denied",
                "error_reason": "user_denied",
                "error_description": "Permissions error.",
            }
        ),
        Outcome.CANCELLED,
        id="1-cancelled",
    ),
    row(
        evidence(
            redirect={"error": "access_denied", "error_reason": "user_denied", "error_code": "200"}
        ),
        Outcome.APP_NOT_LIVE,
        id="1-access-denied-code-200-app-not-live",
    ),
    row(
        evidence(redirect={"error": "access_denied", "error_code": 200}),
        Outcome.APP_NOT_LIVE,
        id="1-error-code-as-number",
    ),
    row(
        evidence(redirect={"error": "access_denied", "error_code": "100"}),
        Outcome.CANCELLED,
        id="1-access-denied-other-code-still-cancelled",
    ),
    row(
        evidence(redirect={"error": "server_error", "error_description": "boom"}),
        Outcome.LOGIN_ERROR,
        id="1-other-error",
    ),
    row(evidence(redirect={}), Outcome.LOGIN_ERROR, id="1-neither-code-nor-error"),
    row(evidence(redirect={"code": "  "}), Outcome.LOGIN_ERROR, id="1-blank-code"),
    row(
        evidence(redirect={"code": "AQD", "error": "access_denied"}),
        Outcome.CANCELLED,
        id="1-error-wins-over-code",
    ),
    row(
        evidence(redirect={"error": "", "code": "AQD"}),
        Outcome.CONNECTED,
        id="1-empty-error-ignored",
    ),
    row(evidence(redirect=None), Outcome.LOGIN_ERROR, id="1-garbage-redirect"),
    # 2. the I/O layer's failures
    row(
        evidence(fetch_failure=FetchFailure.CODE_REJECTED),
        Outcome.LOGIN_EXPIRED,
        id="2-code-rejected",
    ),
    row(
        evidence(fetch_failure=FetchFailure.UNAVAILABLE),
        Outcome.FACEBOOK_UNAVAILABLE,
        id="2-unavailable",
    ),
    row(
        evidence(fetch_failure=FetchFailure.RATE_LIMITED),
        Outcome.FACEBOOK_UNAVAILABLE,
        id="2-rate-limited",
    ),
    # 3. debug_token
    row(evidence(debug_data=None), Outcome.TOKEN_INVALID, id="3-debug-missing"),
    row(evidence(debug_data="garbage"), Outcome.TOKEN_INVALID, id="3-debug-garbage"),
    row(evidence(debug_data=debug(is_valid=False)), Outcome.TOKEN_INVALID, id="3-not-valid"),
    row(
        evidence(debug_data=debug(is_valid="true")),
        Outcome.TOKEN_INVALID,
        id="3-is-valid-must-be-true",
    ),
    row(evidence(debug_data=debug(is_valid=DROP)), Outcome.TOKEN_INVALID, id="3-is-valid-absent"),
    row(evidence(debug_data=debug(app_id="999")), Outcome.TOKEN_INVALID, id="3-app-id-mismatch"),
    row(evidence(debug_data=debug(app_id=DROP)), Outcome.TOKEN_INVALID, id="3-app-id-absent"),
    row(evidence(debug_data=debug(app_id=int(APP_ID))), Outcome.CONNECTED, id="3-app-id-as-number"),
    row(evidence(debug_data=debug(expires_at=EARLIER)), Outcome.TOKEN_INVALID, id="3-expired"),
    row(
        evidence(debug_data=debug(expires_at=int(NOW.timestamp()))),
        Outcome.TOKEN_INVALID,
        id="3-expires-this-second",
    ),
    row(evidence(debug_data=debug(expires_at=0)), Outcome.CONNECTED, id="3-expires-zero-never"),
    row(
        evidence(debug_data=debug(expires_at="soon")),
        Outcome.CONNECTED,
        id="3-expires-garbage-unknown",
    ),
    row(
        evidence(debug_data=debug(data_access_expires_at=EARLIER)),
        Outcome.TOKEN_INVALID,
        id="3-data-access-expired",
    ),
    row(
        evidence(debug_data=debug(data_access_expires_at=0)),
        Outcome.CONNECTED,
        id="3-data-access-zero-never",
    ),
    # 4. permissions
    row(
        evidence(
            permissions=perms(
                "instagram_basic",
                "pages_show_list",
                "pages_read_engagement",
                declined=["instagram_manage_insights"],
            )
        ),
        Outcome.PERMISSIONS_DECLINED,
        declined=("instagram_manage_insights",),
        id="4-one-declined",
    ),
    row(
        evidence(
            permissions=perms(
                "instagram_manage_insights",
                "pages_show_list",
                declined=["pages_read_engagement", "instagram_basic"],
            )
        ),
        Outcome.PERMISSIONS_DECLINED,
        declined=("instagram_basic", "pages_read_engagement"),
        id="4-declined-in-required-order",
    ),
    row(
        evidence(
            permissions=perms(
                "instagram_manage_insights",
                "pages_show_list",
                "pages_read_engagement",
                expired=["instagram_basic"],
            )
        ),
        Outcome.PERMISSIONS_DECLINED,
        declined=("instagram_basic",),
        id="4-status-expired",
    ),
    row(
        evidence(
            permissions=perms("instagram_basic", "instagram_manage_insights", "pages_show_list")
        ),
        Outcome.PERMISSIONS_DECLINED,
        declined=("pages_read_engagement",),
        id="4-absent-though-in-debug-scopes",
    ),
    row(
        evidence(permissions=None),
        Outcome.PERMISSIONS_DECLINED,
        declined=REQUIRED,
        id="4-permissions-garbage",
    ),
    row(
        evidence(
            permissions=[
                None,
                "x",
                {"permission": 5, "status": "granted"},
                {"permission": "instagram_basic"},
                {"permission": "pages_show_list", "status": "GRANTED"},
                *perms("instagram_manage_insights", "pages_read_engagement"),
            ]
        ),
        Outcome.PERMISSIONS_DECLINED,
        declined=("instagram_basic",),
        id="4-permission-entries-garbage",
    ),
    # 5. no Page at all
    row(evidence(pages=[]), Outcome.NO_PAGE, id="5-no-page"),
    row(
        evidence(permissions=perms(*REQUIRED), pages=[]),
        Outcome.NO_PAGE_BUSINESS,
        id="5-no-page-without-business-management",
    ),
    row(
        evidence(permissions=perms(*REQUIRED, declined=["business_management"]), pages=[]),
        Outcome.NO_PAGE_BUSINESS,
        id="5-no-page-business-management-declined",
    ),
    row(
        evidence(pages=[None, "page", {"name": "no id"}, {"id": None}]),
        Outcome.NO_PAGE,
        id="5-pages-garbage-count-as-none",
    ),
    row(evidence(pages=None), Outcome.NO_PAGE, id="5-pages-not-a-list"),
    # 6. the invited account is on a Page
    row(evidence(), Outcome.CONNECTED, page="p1", instagram=SHOP_ID, id="6-connected"),
    row(
        evidence(pages=[page(instagram_business_account=ig("Shop.Gram", SHOP_ID))]),
        Outcome.CONNECTED,
        handle=" @SHOP.gram ",
        instagram=SHOP_ID,
        id="6-case-insensitive-and-at-sign",
    ),
    row(
        evidence(
            pages=[
                page("p1", instagram_business_account=ig("someone")),
                page("p2", instagram_business_account=SHOP_IG),
            ]
        ),
        Outcome.CONNECTED,
        page="p2",
        id="6-second-page-matches",
    ),
    row(
        evidence(debug_data=debug(granular_scopes=[granular("instagram_basic", "178410")])),
        Outcome.IG_NOT_SELECTED,
        page="p1",
        instagram=SHOP_ID,
        id="6-ig-not-selected",
    ),
    row(
        evidence(
            debug_data=debug(
                granular_scopes=[
                    granular("instagram_basic", SHOP_ID),
                    granular("instagram_manage_insights", "178410"),
                ]
            )
        ),
        Outcome.IG_NOT_SELECTED,
        id="6-ig-not-selected-for-insights",
    ),
    row(
        evidence(
            debug_data=debug(
                granular_scopes=[
                    granular("instagram_basic", "178410"),
                    granular("instagram_manage_insights", SHOP_ID),
                ]
            )
        ),
        Outcome.IG_NOT_SELECTED,
        id="6-ig-not-selected-for-basic-though-insights-ok",
    ),
    row(
        evidence(
            debug_data=debug(
                granular_scopes=[
                    granular("instagram_basic", "178410", SHOP_ID),
                    granular("instagram_manage_insights", SHOP_ID),
                ]
            )
        ),
        Outcome.CONNECTED,
        id="6-granular-targets-include-it",
    ),
    row(
        evidence(debug_data=debug(granular_scopes=[granular("instagram_basic", int(SHOP_ID))])),
        Outcome.CONNECTED,
        id="6-granular-target-as-number",
    ),
    row(
        evidence(debug_data=debug(granular_scopes=[{"scope": "instagram_basic"}])),
        Outcome.CONNECTED,
        id="6-granular-targets-absent-means-all",
    ),
    row(
        evidence(debug_data=debug(granular_scopes=[granular("instagram_basic")])),
        Outcome.CONNECTED,
        id="6-granular-targets-empty-means-all",
    ),
    row(
        evidence(debug_data=debug(granular_scopes=[granular("pages_show_list", "p9")])),
        Outcome.CONNECTED,
        id="6-page-targets-do-not-decide",
    ),
    row(
        evidence(debug_data=debug(granular_scopes="garbage")),
        Outcome.CONNECTED,
        id="6-granular-garbage-ignored",
    ),
    row(
        evidence(pages=[page(is_published=False, instagram_business_account=SHOP_IG)]),
        Outcome.PAGE_UNPUBLISHED,
        page="p1",
        instagram=SHOP_ID,
        id="6-page-unpublished",
    ),
    row(
        evidence(pages=[page(is_published=DROP, instagram_business_account=SHOP_IG)]),
        Outcome.CONNECTED,
        id="6-is-published-absent-does-not-block",
    ),
    row(
        evidence(pages=[page(tasks=[], instagram_business_account=SHOP_IG)]),
        Outcome.PAGE_NO_ROLE,
        page="p1",
        instagram=SHOP_ID,
        id="6-tasks-empty",
    ),
    row(
        evidence(pages=[page(tasks=["MESSAGING"], instagram_business_account=SHOP_IG)]),
        Outcome.PAGE_NO_ROLE,
        id="6-tasks-none-usable",
    ),
    row(
        evidence(pages=[page(tasks=DROP, instagram_business_account=SHOP_IG)]),
        Outcome.CONNECTED,
        id="6-tasks-absent-does-not-block",
    ),
    row(
        evidence(pages=[page(tasks=["analyze"], instagram_business_account=SHOP_IG)]),
        Outcome.CONNECTED,
        id="6-tasks-any-case",
    ),
    row(
        evidence(pages=[page(tasks="MANAGE", instagram_business_account=SHOP_IG)]),
        Outcome.CONNECTED,
        id="6-tasks-garbage-unknown",
    ),
    row(
        evidence(
            debug_data=debug(granular_scopes=[granular("instagram_basic", "178410")]),
            pages=[page(is_published=False, tasks=[], instagram_business_account=SHOP_IG)],
        ),
        Outcome.IG_NOT_SELECTED,
        id="6-not-selected-checked-before-unpublished",
    ),
    row(
        evidence(pages=[page(is_published=False, tasks=[], instagram_business_account=SHOP_IG)]),
        Outcome.PAGE_UNPUBLISHED,
        id="6-unpublished-checked-before-role",
    ),
    row(
        evidence(
            pages=[
                page("p1", is_published=False, instagram_business_account=SHOP_IG),
                page("p2", instagram_business_account=SHOP_IG),
            ]
        ),
        Outcome.CONNECTED,
        page="p2",
        id="6-several-matches-prefer-good-one",
    ),
    row(
        evidence(
            pages=[
                page("p1", tasks=[], instagram_business_account=SHOP_IG),
                page("p2", is_published=False, instagram_business_account=SHOP_IG),
            ]
        ),
        Outcome.PAGE_NO_ROLE,
        page="p1",
        id="6-several-matches-all-bad-first-reported",
    ),
    # 7. half-linked
    row(
        evidence(pages=[page(connected_instagram_account=SHOP_IG)]),
        Outcome.IG_HALF_LINKED,
        page="p1",
        instagram=SHOP_ID,
        id="7-half-linked",
    ),
    row(
        evidence(
            pages=[
                page("p1", connected_instagram_account=SHOP_IG),
                page("p2", instagram_business_account=SHOP_IG, connected_instagram_account=SHOP_IG),
            ]
        ),
        Outcome.CONNECTED,
        page="p2",
        id="7-full-link-elsewhere-wins",
    ),
    row(
        evidence(
            pages=[
                page(instagram_business_account=ig("other"), connected_instagram_account=SHOP_IG)
            ]
        ),
        Outcome.IG_OTHER_ACCOUNT,
        other_accounts=("other",),
        id="7-half-link-on-page-with-other-business-account",
    ),
    # 8. other accounts
    row(
        evidence(
            pages=[
                page("p1", instagram_business_account=ig("zeta")),
                page("p2", instagram_business_account=ig("Alpha")),
                page("p3", instagram_business_account=ig("zeta")),
                page("p4"),
            ]
        ),
        Outcome.IG_OTHER_ACCOUNT,
        other_accounts=("alpha", "zeta"),
        page=None,
        id="8-other-accounts-sorted-deduplicated",
    ),
    row(
        evidence(pages=[page(instagram_business_account=ig("someone"))]),
        Outcome.IG_OTHER_ACCOUNT,
        handle="@",
        other_accounts=("someone",),
        id="8-empty-invited-handle",
    ),
    # 9. nothing linked
    row(evidence(pages=[page("p1"), page("p2")]), Outcome.IG_NOT_LINKED, id="9-not-linked"),
    row(
        evidence(pages=[page(connected_instagram_account=ig("someone"))]),
        Outcome.IG_NOT_LINKED,
        id="9-only-someone-elses-half-link",
    ),
    row(
        evidence(
            pages=[
                page("p1", instagram_business_account="17841400000000001"),
                page("p2", instagram_business_account={"id": "1784"}),
                page("p3", instagram_business_account={"username": HANDLE}),
                page("p4", instagram_business_account=None, connected_instagram_account=[SHOP_IG]),
            ]
        ),
        Outcome.IG_NOT_LINKED,
        id="9-instagram-accounts-garbage",
    ),
]


@pytest.mark.parametrize(("ev", "handle", "expected"), DECISIONS)
def test_decide(ev: LoginEvidence, handle: str, expected: dict[str, Any]) -> None:
    actual = summary(judge(ev, handle))
    assert {key: actual[key] for key in expected} == expected


def test_connected_verdict_carries_page_and_account() -> None:
    verdict = judge(evidence())
    assert verdict.page is not None
    assert verdict.page.name == "Page p1"
    assert verdict.page.is_published is True
    assert verdict.page.tasks == ("MANAGE",)
    assert verdict.instagram is not None
    assert verdict.instagram.username == HANDLE


@pytest.mark.parametrize(
    "ev",
    [
        pytest.param(evidence(redirect={"error": "access_denied"}), id="cancelled"),
        pytest.param(evidence(fetch_failure=FetchFailure.UNAVAILABLE), id="unavailable"),
        pytest.param(evidence(debug_data=debug(expires_at=EARLIER)), id="token-invalid"),
        pytest.param(
            evidence(permissions=perms(*REQUIRED[1:], "business_management")), id="declined"
        ),
        pytest.param(evidence(pages=[]), id="no-page"),
        pytest.param(evidence(), id="connected"),
    ],
)
def test_token_details_filled_on_every_outcome(ev: LoginEvidence) -> None:
    verdict = judge(ev)
    assert verdict.facebook_user_id == "10160000000000001"
    assert verdict.data_access_expires_at == datetime.fromtimestamp(MUCH_LATER, tz=UTC)
    assert verdict.data_access_expires_at.tzinfo is UTC
    assert verdict.granted == tuple(sorted(p["permission"] for p in ev.permissions))


def test_token_expiry_reported_when_it_has_not_passed() -> None:
    verdict = judge(evidence())
    assert verdict.expires_at == datetime.fromtimestamp(LATER, tz=UTC)


def test_token_never_expiring_has_no_expiry() -> None:
    verdict = judge(evidence(debug_data=debug(expires_at=0, data_access_expires_at=0)))
    assert (verdict.expires_at, verdict.data_access_expires_at) == (None, None)


def test_granted_is_sorted_and_excludes_declined() -> None:
    verdict = judge(evidence(permissions=perms("pages_show_list", "email", declined=["ads_read"])))
    assert verdict.granted == ("email", "pages_show_list")


def test_foreign_token_reports_no_identity() -> None:
    verdict = judge(evidence(debug_data=debug(app_id="999")))
    assert verdict == Verdict(Outcome.TOKEN_INVALID)


def test_without_debug_granted_is_still_reported() -> None:
    verdict = judge(evidence(debug_data=None))
    assert verdict.outcome is Outcome.TOKEN_INVALID
    assert verdict.facebook_user_id is None
    assert verdict.granted == tuple(sorted([*REQUIRED, "business_management"]))


def test_now_in_another_timezone_is_the_same_instant() -> None:
    berlin = timezone(timedelta(hours=2))
    just_before_expiry = datetime.fromtimestamp(LATER - 1, tz=berlin)
    verdict = decide(
        evidence(debug_data=debug(data_access_expires_at=0)),
        invited_handle=HANDLE,
        required_scopes=REQUIRED,
        app_id=APP_ID,
        now=just_before_expiry,
    )
    assert verdict.connected


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(
            evidence(),
            invited_handle=HANDLE,
            required_scopes=REQUIRED,
            app_id=APP_ID,
            now=datetime(2026, 6, 1),
        )


def test_duplicate_required_scopes_listed_once() -> None:
    verdict = decide(
        evidence(permissions=[]),
        invited_handle=HANDLE,
        required_scopes=["instagram_basic", "instagram_basic"],
        app_id=APP_ID,
        now=NOW,
    )
    assert verdict.declined == ("instagram_basic",)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    [
        "id",
        "username",
        "tasks",
        "is_published",
        "instagram_business_account",
        "connected_instagram_account",
        "code",
        "error",
        "error_code",
        "is_valid",
        "app_id",
        "expires_at",
        "data_access_expires_at",
        "granular_scopes",
        "scope",
        "target_ids",
        "permission",
        "status",
    ]
)
_SHAPED = st.recursive(
    _JSON,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(redirect=_SHAPED, debug_data=_SHAPED, permissions=_SHAPED, pages=_SHAPED)
def test_garbage_never_raises(redirect: Any, debug_data: Any, permissions: Any, pages: Any) -> None:
    verdict = judge(
        LoginEvidence(redirect=redirect, debug=debug_data, permissions=permissions, pages=pages)
    )
    assert isinstance(verdict.outcome, Outcome)


PROPERTIES = [
    # outcome, connected, needs_rerequest, person_can_fix
    (Outcome.CONNECTED, True, False, False),
    (Outcome.CANCELLED, False, False, True),
    (Outcome.APP_NOT_LIVE, False, False, False),
    (Outcome.LOGIN_ERROR, False, False, True),
    (Outcome.LOGIN_EXPIRED, False, False, True),
    (Outcome.FACEBOOK_UNAVAILABLE, False, False, False),
    (Outcome.TOKEN_INVALID, False, False, False),
    (Outcome.PERMISSIONS_DECLINED, False, True, True),
    (Outcome.NO_PAGE, False, False, True),
    (Outcome.NO_PAGE_BUSINESS, False, False, True),
    (Outcome.PAGE_NO_ROLE, False, False, True),
    (Outcome.PAGE_UNPUBLISHED, False, False, True),
    (Outcome.IG_NOT_SELECTED, False, False, True),
    (Outcome.IG_HALF_LINKED, False, False, True),
    (Outcome.IG_OTHER_ACCOUNT, False, False, True),
    (Outcome.IG_NOT_LINKED, False, False, True),
]


@pytest.mark.parametrize(
    ("outcome", "connected", "rerequest", "person_can_fix"),
    [pytest.param(*r, id=r[0].value) for r in PROPERTIES],
)
def test_verdict_properties(
    outcome: Outcome, connected: bool, rerequest: bool, person_can_fix: bool
) -> None:
    verdict = Verdict(outcome)
    assert (verdict.connected, verdict.needs_rerequest, verdict.person_can_fix) == (
        connected,
        rerequest,
        person_can_fix,
    )


def test_every_outcome_has_a_property_row() -> None:
    assert sorted(r[0] for r in PROPERTIES) == sorted(Outcome)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("shop.gram", "shop.gram"),
        ("@Shop.Gram", "shop.gram"),
        ("  @shop_gram \n", "shop_gram"),
        ("@@twice", "@twice"),
        ("", ""),
    ],
)
def test_normalize_handle(raw: str, normalized: str) -> None:
    assert normalize_handle(raw) == normalized


@pytest.mark.parametrize(
    ("handle", "valid"),
    [
        pytest.param("shop.gram", True, id="dot-inside"),
        pytest.param("@Shop_Gram99", True, id="at-and-case"),
        pytest.param("a", True, id="one-char"),
        pytest.param("a" * 30, True, id="thirty-chars"),
        pytest.param("a" * 31, False, id="thirty-one-chars"),
        pytest.param("", False, id="empty"),
        pytest.param("@", False, id="only-at"),
        pytest.param(".shop", False, id="leading-dot"),
        pytest.param("shop.", False, id="trailing-dot"),
        pytest.param("shop..gram", False, id="double-dot"),
        pytest.param("shop-gram", False, id="hyphen"),
        pytest.param("shop gram", False, id="inner-space"),
        pytest.param("shöp", False, id="non-ascii"),
        pytest.param("@@shop", False, id="two-ats"),
    ],
)
def test_is_valid_handle(handle: str, valid: bool) -> None:
    assert is_valid_handle(handle) is valid


@pytest.mark.parametrize(
    ("code", "status", "failure"),
    [
        pytest.param(None, None, FetchFailure.UNAVAILABLE, id="network-error"),
        pytest.param(None, 502, FetchFailure.UNAVAILABLE, id="5xx-without-body"),
        pytest.param(None, 400, FetchFailure.UNAVAILABLE, id="no-code-unknown"),
        pytest.param(1, 500, FetchFailure.UNAVAILABLE, id="code-1"),
        pytest.param(2, 503, FetchFailure.UNAVAILABLE, id="code-2"),
        pytest.param(100, 500, FetchFailure.UNAVAILABLE, id="5xx-wins-over-code"),
        pytest.param(4, 400, FetchFailure.RATE_LIMITED, id="code-4"),
        pytest.param(17, 400, FetchFailure.RATE_LIMITED, id="code-17"),
        pytest.param(32, 400, FetchFailure.RATE_LIMITED, id="code-32"),
        pytest.param(613, 400, FetchFailure.RATE_LIMITED, id="code-613"),
        pytest.param(80001, 400, FetchFailure.RATE_LIMITED, id="code-80001"),
        pytest.param(80002, 500, FetchFailure.RATE_LIMITED, id="code-80002-on-5xx"),
        pytest.param(None, 429, FetchFailure.RATE_LIMITED, id="http-429"),
        pytest.param(100, 400, FetchFailure.CODE_REJECTED, id="code-100-used-code"),
        pytest.param(190, 400, FetchFailure.CODE_REJECTED, id="code-190"),
        pytest.param(368, 400, FetchFailure.CODE_REJECTED, id="code-368"),
        pytest.param(100, None, FetchFailure.CODE_REJECTED, id="code-without-status"),
    ],
)
def test_fetch_failure_from_graph_error(
    code: int | None, status: int | None, failure: FetchFailure
) -> None:
    assert FetchFailure.from_graph_error(code, status) is failure
