"""The Graph stand-in's lifecycle controls: what Facebook does to a connection after the login
(tokens expiring or invalidated, permissions, Page roles and links lost, time passing, rate limits
and outages), each driven through the stand-in's API and observed over real HTTP, as the bot's
health check will see it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bot.health import (
    CheckFacts,
    Expected,
    HealthReason,
    HealthState,
    HealthVerdict,
    ProblemKind,
    classify_graph_error,
    judge,
)
from sandbox.facebook import FbPage, FbUser, GraphStandin, IgAccount
from tests.graph_client import SCOPES, Kept, get, log_in

USER = "20001"
PAGE = "p-1"
IG = IgAccount(id="17841400000000042", username="lena.paints")
DAY = 86400


def lena() -> FbUser:
    return FbUser(
        id=USER,
        name="Lena M",
        pages=[FbPage(PAGE, "Lena Paints", instagram=IG), FbPage("p-2", "Lena's Other Page")],
    )


async def connect(fb: GraphStandin, http: httpx.AsyncClient) -> Kept:
    long_lived = await log_in(fb, http, lena())
    assert long_lived.json()["expires_in"] == 5_184_000
    user_token = long_lived.json()["access_token"]
    accounts = await get(fb, http, "me/accounts", user_token, fields="id,access_token")
    page_token = next(p["access_token"] for p in accounts.json()["data"] if p["id"] == PAGE)
    return Kept(user_token, page_token)


async def debug(fb: GraphStandin, http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    answer = await http.get(
        f"{fb.base_url}/v25.0/debug_token",
        params={"input_token": token, "access_token": f"{fb.app_id}|{fb.app_secret}"},
    )
    assert answer.status_code == 200
    data: dict[str, Any] = answer.json()["data"]
    return data


def error_of(answer: httpx.Response) -> tuple[int, int, int | None]:
    error = answer.json()["error"]
    return answer.status_code, error["code"], error.get("error_subcode")


PAGE_READ = "id,is_published,instagram_business_account{id,username}"


async def test_debug_token_wire_format_and_page_tokens(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    now = time.time()
    user = await debug(fb, http, kept.user_token)
    assert user["is_valid"] is True
    assert user["app_id"] == fb.app_id and user["user_id"] == USER and user["type"] == "USER"
    assert isinstance(user["expires_at"], int) and isinstance(user["data_access_expires_at"], int)
    assert abs(user["expires_at"] - (now + 60 * DAY)) < 60
    assert abs(user["data_access_expires_at"] - (now + 90 * DAY)) < 60
    assert set(SCOPES.split(",")) <= set(user["scopes"])

    # A Page token derived from a long-lived user token never expires.
    page = await debug(fb, http, kept.page_token)
    assert page["is_valid"] is True and page["type"] == "PAGE" and page["expires_at"] == 0
    assert page["profile_id"] == PAGE
    read = await get(fb, http, PAGE, kept.page_token, fields=PAGE_READ)
    assert read.json()["instagram_business_account"] == {"id": IG.id, "username": IG.username}
    assert (await get(fb, http, "me", kept.page_token, fields="id")).json() == {"id": PAGE}


async def test_fast_forward_expires_the_user_token_then_data_access(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    before = await debug(fb, http, kept.user_token)

    fb.fast_forward(days=61)
    assert fb.now() - time.time() == pytest.approx(61 * DAY, abs=5)
    expired = await get(fb, http, "me", kept.user_token)
    assert error_of(expired) == (400, 190, 463)
    assert "Session has expired on" in expired.json()["error"]["message"]
    after = await debug(fb, http, kept.user_token)
    assert after["is_valid"] is False and after["error"]["subcode"] == 463
    assert after["expires_at"] == before["expires_at"]  # the same moment, now in the past
    # The Page token lives on (no expiry), until data access ends 90 days after the login.
    assert (await get(fb, http, PAGE, kept.page_token, fields="id")).status_code == 200

    fb.fast_forward(days=30)
    gone = await get(fb, http, PAGE, kept.page_token, fields="id")
    assert error_of(gone) == (400, 190, 493)
    page = await debug(fb, http, kept.page_token)
    assert page["is_valid"] is True  # still authenticated, but the data is not readable
    assert page["data_access_expires_at"] < fb.now()


async def test_data_access_and_token_expiry_can_be_moved(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    soon = int(fb.now()) + 10 * DAY
    fb.set_data_access_expires_at(USER, soon)
    fb.set_token_expires_at(kept.user_token, soon + DAY)
    data = await debug(fb, http, kept.user_token)
    assert (data["data_access_expires_at"], data["expires_at"]) == (soon, soon + DAY)

    fb.set_data_access_expires_at(USER, fb.now() - 1)
    assert error_of(await get(fb, http, "me/accounts", kept.user_token)) == (400, 190, 493)
    fb.set_data_access_expires_at(USER, fb.now() + DAY)
    assert (await get(fb, http, "me/accounts", kept.user_token)).status_code == 200

    fb.expire_token(kept.page_token)
    assert error_of(await get(fb, http, "me", kept.page_token)) == (400, 190, 463)
    assert (await get(fb, http, "me", kept.user_token)).status_code == 200


@pytest.mark.parametrize(
    ("subcode", "message", "page_token_dies"),
    [
        (458, "The user has not authorized application 1234567890.", True),
        (460, "The session has been invalidated because the user changed their password", True),
        (463, "Session has expired on", True),
        (467, "The session is invalid because the user logged out.", False),
    ],
)
async def test_tokens_invalidated_with_each_subcode(
    fb: GraphStandin, http: httpx.AsyncClient, subcode: int, message: str, page_token_dies: bool
) -> None:
    kept = await connect(fb, http)
    fb.invalidate_tokens(USER, subcode)

    answer = await get(fb, http, "me", kept.user_token)
    assert error_of(answer) == (400, 190, subcode)
    assert message in answer.json()["error"]["message"]
    assert answer.json()["error"]["type"] == "OAuthException"
    data = await debug(fb, http, kept.user_token)
    assert data["is_valid"] is False
    assert (data["error"]["code"], data["error"]["subcode"]) == (190, subcode)
    assert message in data["error"]["message"]
    assert data["app_id"] == fb.app_id and data["user_id"] == USER

    page = await get(fb, http, PAGE, kept.page_token, fields="id")
    assert (page.status_code != 200) is page_token_dies
    if page_token_dies:
        assert error_of(page) == (400, 190, subcode)


async def test_invalidating_one_token_and_the_named_controls(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    fb.invalidate_tokens(USER, 460, token=kept.page_token)
    assert error_of(await get(fb, http, "me", kept.page_token)) == (400, 190, 460)
    assert (await get(fb, http, "me", kept.user_token)).status_code == 200

    fb.log_out(USER)
    assert error_of(await get(fb, http, "me", kept.user_token)) == (400, 190, 467)
    fb.change_password(USER)
    assert error_of(await get(fb, http, "me", kept.user_token)) == (400, 190, 460)

    again = await connect(fb, http)  # a new login gets working tokens
    assert (await get(fb, http, "me", again.user_token)).status_code == 200
    fb.remove_app(USER)
    assert error_of(await get(fb, http, "me", again.page_token)) == (400, 190, 458)
    assert (await debug(fb, http, again.user_token))["error"]["subcode"] == 458
    assert fb.revoked == []  # removed on Facebook, not withdrawn by the bot

    with pytest.raises(ValueError, match="subcode"):
        fb.invalidate_tokens(USER, 190)


async def test_one_permission_removed(fb: GraphStandin, http: httpx.AsyncClient) -> None:
    kept = await connect(fb, http)
    fb.remove_permission(USER, "instagram_basic")
    statuses = {
        p["permission"]: p["status"]
        for p in (await get(fb, http, "me/permissions", kept.user_token)).json()["data"]
    }
    assert statuses["instagram_basic"] == "declined"
    assert statuses["instagram_manage_insights"] == "granted"
    data = await debug(fb, http, kept.user_token)
    assert data["is_valid"] is True and "instagram_basic" not in data["scopes"]
    refused = await get(fb, http, IG.id, kept.page_token, fields="username")
    assert error_of(refused)[1] == 10
    with pytest.raises(ValueError, match="not granted"):
        fb.remove_permission(USER, "instagram_basic")


async def test_page_role_lost(fb: GraphStandin, http: httpx.AsyncClient) -> None:
    kept = await connect(fb, http)
    fb.remove_page_role(USER, PAGE)
    accounts = await get(fb, http, "me/accounts", kept.user_token, fields="id", limit="10")
    assert [p["id"] for p in accounts.json()["data"]] == ["p-2"]
    dead = await get(fb, http, PAGE, kept.page_token, fields="id")
    assert error_of(dead) == (400, 190, None)
    assert "administrator, editor, or moderator" in dead.json()["error"]["message"]
    assert (await debug(fb, http, kept.page_token))["is_valid"] is False
    unreachable = await get(fb, http, PAGE, kept.user_token, fields="id")
    assert error_of(unreachable) == (400, 100, 33)
    assert (await debug(fb, http, kept.user_token))["is_valid"] is True


async def test_instagram_unlinked_page_unpublished_username_changed(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)

    fb.change_username(USER, PAGE, "lena.draws")
    read = await get(fb, http, PAGE, kept.page_token, fields=PAGE_READ)
    assert read.json()["instagram_business_account"]["username"] == "lena.draws"
    direct = await get(fb, http, IG.id, kept.page_token, fields="id,username")
    assert direct.json() == {"id": IG.id, "username": "lena.draws"}
    assert IG.username == "lena.paints"  # the stand-in changed its copy, not the test's

    fb.unpublish_page(USER, PAGE)
    assert (await get(fb, http, PAGE, kept.page_token, fields=PAGE_READ)).json()[
        "is_published"
    ] is False
    fb.unpublish_page(USER, PAGE, published=True)

    fb.unlink_instagram(USER, PAGE)
    read = await get(fb, http, PAGE, kept.page_token, fields=PAGE_READ)
    assert read.json() == {"id": PAGE, "is_published": True}
    assert error_of(await get(fb, http, IG.id, kept.page_token, fields="id")) == (400, 100, 33)
    with pytest.raises(ValueError, match="no Instagram account"):
        fb.change_username(USER, PAGE, "x")
    with pytest.raises(KeyError):
        fb.unpublish_page(USER, "p-404")


def usage(answer: httpx.Response, header: str) -> Any:
    return json.loads(answer.headers[header])


async def test_app_and_user_rate_limits(fb: GraphStandin, http: httpx.AsyncClient) -> None:
    kept = await connect(fb, http)
    fb.fast_forward(seconds=3601)  # the login's calls leave the hour's window
    fb.set_rate_limits(app_per_hour=4)
    answers = [await get(fb, http, "me", kept.user_token) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 400]
    assert [usage(a, "X-App-Usage")["call_count"] for a in answers[:4]] == [25, 50, 75, 100]
    limited = answers[-1].json()["error"]
    assert (limited["code"], limited["is_transient"]) == (4, True)
    assert limited["message"] == "(#4) Application request limit reached"
    assert fb.limits.refused == 1

    fb.fast_forward(seconds=3601)  # the window slides on the stand-in's clock
    fb.set_rate_limits(user_per_hour=2)
    answers = [await get(fb, http, "me", kept.user_token) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 400]
    assert (answers[-1].json()["error"]["code"], answers[-1].json()["error"]["error_subcode"]) == (
        17,
        2446079,
    )
    fb.set_rate_limits()
    assert (await get(fb, http, "me", kept.user_token)).status_code == 200


async def test_page_and_instagram_business_use_case_limits(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    fb.set_rate_limits(page_per_hour=2, instagram_per_hour=1)
    first = await get(fb, http, PAGE, kept.page_token, fields="id")
    assert usage(first, "X-Business-Use-Case-Usage")[PAGE][0]["type"] == "pages"
    assert usage(first, "X-Business-Use-Case-Usage")[PAGE][0]["call_count"] == 50
    await get(fb, http, PAGE, kept.page_token, fields="id")
    limited = await get(fb, http, PAGE, kept.page_token, fields="id")
    assert error_of(limited)[1] == 32
    regain = usage(limited, "X-Business-Use-Case-Usage")[PAGE][0]
    assert regain["call_count"] == 100 and 1 <= regain["estimated_time_to_regain_access"] <= 60
    problem = classify_graph_error(limited.status_code, limited.json(), limited.headers)
    assert problem.kind is ProblemKind.RATE_LIMITED and problem.retry_after is not None

    fb.set_rate_limits(instagram_per_hour=1)
    assert (await get(fb, http, IG.id, kept.user_token, fields="id")).status_code == 200
    throttled = await get(fb, http, IG.id, kept.user_token, fields="id")
    assert error_of(throttled)[1] == 80002
    assert usage(throttled, "X-Business-Use-Case-Usage")[IG.id][0]["type"] == "instagram"


async def test_outage(fb: GraphStandin, http: httpx.AsyncClient) -> None:
    kept = await connect(fb, http)
    fb.set_outage()
    for answer in (
        await get(fb, http, "me", kept.user_token),
        await http.get(
            f"{fb.base_url}/v25.0/debug_token",
            params={"input_token": kept.user_token, "access_token": f"{fb.app_id}|x"},
        ),
    ):
        assert error_of(answer) == (500, 2, None)
        assert answer.json()["error"]["message"] == "(#2) Service temporarily unavailable"
        assert answer.json()["error"]["is_transient"] is True
        assert classify_graph_error(answer.status_code, answer.json()).retryable
    fb.set_outage(False)
    assert (await get(fb, http, "me", kept.user_token)).status_code == 200


async def test_the_health_classifier_reads_every_stand_in_error(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    """What the stand-in answers is sorted by bot.health as Graph's real answers would be."""
    kept = await connect(fb, http)
    fb.remove_permission(USER, "instagram_basic")
    seen = [await get(fb, http, IG.id, kept.page_token, fields="id,username")]
    fb.unlink_instagram(USER, PAGE)
    seen.append(await get(fb, http, IG.id, kept.user_token, fields="id"))
    fb.remove_page_role(USER, PAGE)
    seen.append(await get(fb, http, PAGE, kept.page_token, fields="id"))
    fb.change_password(USER)
    seen.append(await get(fb, http, "me", kept.user_token))
    fresh = await connect(fb, http)  # a new login: her Page and account are back
    fb.set_data_access_expires_at(USER, fb.now() - 1)
    seen.append(await get(fb, http, "me/accounts", fresh.user_token))
    assert [classify_graph_error(a.status_code, a.json()).kind for a in seen] == [
        ProblemKind.PERMISSION,
        ProblemKind.NOT_FOUND,
        ProblemKind.TOKEN_INVALID,
        ProblemKind.PASSWORD_CHANGED,
        ProblemKind.ACCESS_EXPIRED,
    ]


CHECK_FIELDS = (
    "id,is_published,tasks,instagram_business_account{id,username},"
    "connected_instagram_account{id,username}"
)


async def check(fb: GraphStandin, http: httpx.AsyncClient, kept: Kept) -> HealthVerdict:
    """One health check as the bot will make it: debug_token, then the Page with its token."""
    answer = await http.get(
        f"{fb.base_url}/v25.0/debug_token",
        params={"input_token": kept.user_token, "access_token": f"{fb.app_id}|{fb.app_secret}"},
    )
    debug_data, debug_problem = None, None
    if answer.status_code == 200:
        debug_data = answer.json()["data"]
    else:
        debug_problem = classify_graph_error(answer.status_code, answer.json(), answer.headers)
    read = await get(fb, http, PAGE, kept.page_token, fields=CHECK_FIELDS)
    page, page_problem = None, None
    if read.status_code == 200:
        page = read.json()
    else:
        page_problem = classify_graph_error(read.status_code, read.json(), read.headers)
    expected = Expected(PAGE, IG.id, IG.username, tuple(SCOPES.split(",")), fb.app_id)
    now = datetime.fromtimestamp(fb.now(), tz=UTC)
    return judge(
        CheckFacts(
            expected,
            now,
            debug=debug_data,
            debug_problem=debug_problem,
            page=page,
            page_problem=page_problem,
        )
    )


@pytest.mark.parametrize(
    ("control", "state", "reason"),
    [
        (lambda fb: None, HealthState.HEALTHY, None),
        (lambda fb: fb.change_password(USER), HealthState.BROKEN, HealthReason.PASSWORD_CHANGED),
        (lambda fb: fb.remove_app(USER), HealthState.DISCONNECTED, HealthReason.APP_REMOVED),
        (lambda fb: fb.log_out(USER), HealthState.BROKEN, HealthReason.TOKEN_INVALID),
        (lambda fb: fb.fast_forward(days=61), HealthState.BROKEN, HealthReason.TOKEN_EXPIRED),
        (
            lambda fb: fb.set_data_access_expires_at(USER, fb.now() - 1),
            HealthState.BROKEN,
            HealthReason.ACCESS_EXPIRED,
        ),
        (
            lambda fb: fb.remove_permission(USER, "instagram_manage_insights"),
            HealthState.BROKEN,
            HealthReason.PERMISSIONS_DECLINED,
        ),
        (
            lambda fb: fb.remove_page_role(USER, PAGE),
            HealthState.BROKEN,
            HealthReason.PAGE_ROLE_LOST,
        ),
        (
            lambda fb: fb.unlink_instagram(USER, PAGE),
            HealthState.BROKEN,
            HealthReason.INSTAGRAM_UNLINKED,
        ),
        (
            lambda fb: fb.unpublish_page(USER, PAGE),
            HealthState.BROKEN,
            HealthReason.PAGE_UNPUBLISHED,
        ),
        (
            lambda fb: fb.change_username(USER, PAGE, "lena.draws"),
            HealthState.BROKEN,
            HealthReason.USERNAME_CHANGED,
        ),
        (lambda fb: fb.fast_forward(days=47), HealthState.RENEWAL_DUE, None),
        (lambda fb: fb.set_outage(), HealthState.HEALTHY, None),
        (lambda fb: fb.set_rate_limits(app_per_hour=1), HealthState.HEALTHY, None),
    ],
)
async def test_each_control_is_judged_by_the_health_verdict(
    fb: GraphStandin,
    http: httpx.AsyncClient,
    control: Callable[[GraphStandin], None],
    state: HealthState,
    reason: HealthReason | None,
) -> None:
    kept = await connect(fb, http)
    control(fb)
    verdict = await check(fb, http, kept)
    assert (verdict.state, verdict.reason) == (state, reason)
    if state is HealthState.RENEWAL_DUE:
        assert verdict.renewal_stage == 14  # the 60-day token ends in 13 days
    throttled = fb.outage or fb.limits.app_per_hour is not None
    assert (verdict.retry is not None) is throttled
