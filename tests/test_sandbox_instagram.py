"""The Instagram Login stand-in (sandbox/instagram/) over real HTTP, as the bot will use it: the
authorization window (scripted and through its sandbox consent page), the code exchange in both
documented shapes, long-lived tokens and their refresh rules, /me, insights and media through the
reused Graph logic, and Instagram's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sandbox.instagram import (
    AccountType,
    ExchangeShape,
    IgConsent,
    IgPerson,
    InstagramStandin,
    Post,
)

REDIRECT = "https://connect.example/ig/callback"
SCOPE = "instagram_business_basic,instagram_business_manage_insights"
DAY = 86400
ANNA = IgPerson("anna.bakes", name="Anna Bakes", followers_count=12345, media_count=310)


@pytest.fixture
async def ig() -> AsyncIterator[InstagramStandin]:
    standin = InstagramStandin()
    await standin.start()
    yield standin
    await standin.stop()
    assert not standin.internal_errors


def authorize_query(ig: InstagramStandin, **overrides: str) -> dict[str, str]:
    query = {
        "client_id": ig.app_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": SCOPE,
        "state": "st-1",
    }
    query.update(overrides)
    return query


async def authorize(ig: InstagramStandin, http: httpx.AsyncClient, **overrides: str) -> str:
    """Open the authorize URL; returns where the window redirects the browser."""
    answer = await http.get(
        f"{ig.base_url}/oauth/authorize", params=authorize_query(ig, **overrides)
    )
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def code_of(location: str) -> str:
    """The code as the bot must take it: from the query, without Instagram's trailing "#_"."""
    assert location.endswith("#_")
    return parse_qs(urlsplit(location).query)["code"][0]


async def exchange(
    ig: InstagramStandin, http: httpx.AsyncClient, code: str, **overrides: str
) -> httpx.Response:
    form = {
        "client_id": ig.app_id,
        "client_secret": ig.app_secret,
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
        "code": code,
    }
    form.update(overrides)
    return await http.post(f"{ig.base_url}/oauth/access_token", data=form)


async def long_lived(ig: InstagramStandin, http: httpx.AsyncClient, short: str) -> httpx.Response:
    return await http.get(
        f"{ig.base_url}/access_token",
        params={
            "grant_type": "ig_exchange_token",
            "client_secret": ig.app_secret,
            "access_token": short,
        },
    )


async def refresh(ig: InstagramStandin, http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.get(
        f"{ig.base_url}/refresh_access_token",
        params={"grant_type": "ig_refresh_token", "access_token": token},
    )


async def graph(
    ig: InstagramStandin, http: httpx.AsyncClient, path: str, token: str, **params: Any
) -> httpx.Response:
    return await http.get(f"{ig.base_url}/v25.0/{path}", params={"access_token": token, **params})


async def log_in(
    ig: InstagramStandin,
    http: httpx.AsyncClient,
    person: IgPerson = ANNA,
    consent: IgConsent | None = None,
) -> str:
    """The whole login as the bot does it; returns the long-lived token."""
    ig.set_person(person, consent)
    short = await exchange(ig, http, code_of(await authorize(ig, http)))
    assert short.status_code == 200, short.text
    answer = await long_lived(ig, http, short.json()["data"][0]["access_token"])
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def graph_error(answer: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()["error"]
    assert body["type"] in ("OAuthException", "GraphMethodException") and body["fbtrace_id"]
    return body


# -- the login --------------------------------------------------------------------------------


async def test_login_from_authorize_to_me(ig: InstagramStandin, http: httpx.AsyncClient) -> None:
    ig.set_person(ANNA)
    location = await authorize(ig, http)
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st-1"]
    # The code comes last and the "#_" right after it: taken apart by hand, it sticks to the code.
    raw_code = location.split("code=", 1)[1]
    assert raw_code.endswith("#_") and raw_code.removesuffix("#_") == query["code"][0]

    short = await exchange(ig, http, code_of(location))
    assert short.status_code == 200
    entry = short.json()["data"][0]
    assert entry["user_id"] == ANNA.id and isinstance(entry["user_id"], str)
    assert entry["permissions"] == SCOPE
    assert ig.token_info(entry["access_token"]).expires_at - ig.now() == pytest.approx(3600, abs=5)

    answer = await long_lived(ig, http, entry["access_token"])
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 60 * DAY
    assert body["access_token"].startswith("IGAA")

    fields = "id,user_id,username,account_type,followers_count,media_count,name,profile_picture_url"
    me = await graph(ig, http, "me", body["access_token"], fields=fields)
    assert me.status_code == 200
    profile = me.json()
    assert profile["id"] == ANNA.id and profile["user_id"] == ANNA.user_id
    assert profile["user_id"].startswith("17841")
    assert profile["username"] == "anna.bakes" and profile["account_type"] == "BUSINESS"
    assert profile["followers_count"] == 12345 and profile["media_count"] == 310
    assert profile["name"] == "Anna Bakes"
    picture = await http.get(profile["profile_picture_url"])
    assert picture.headers["content-type"] == "image/png"
    # Without a version, and with the token in an Authorization header, it answers the same.
    plain = await http.get(
        f"{ig.base_url}/me",
        params={"fields": "username"},
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert plain.json() == {"username": "anna.bakes", "id": ANNA.id}


async def test_flat_exchange_shape(ig: InstagramStandin, http: httpx.AsyncClient) -> None:
    ig.exchange_shape = ExchangeShape.FLAT
    ig.set_person(ANNA)
    short = await exchange(ig, http, code_of(await authorize(ig, http)))
    body = short.json()
    assert set(body) == {"access_token", "user_id", "permissions"}
    assert body["user_id"] == int(ANNA.id)
    assert body["permissions"] == SCOPE.split(",")


async def test_declined_permission(ig: InstagramStandin, http: httpx.AsyncClient) -> None:
    consent = IgConsent(declined={"instagram_business_manage_insights"})
    ig.set_person(ANNA, consent)
    short = await exchange(ig, http, code_of(await authorize(ig, http)))
    assert short.json()["data"][0]["permissions"] == "instagram_business_basic"
    token = await long_lived(ig, http, short.json()["data"][0]["access_token"])
    insights = await graph(
        ig, http, "me/insights", token.json()["access_token"], metric="reach", period="day"
    )
    assert insights.status_code == 400
    assert graph_error(insights)["code"] == 10
    with pytest.raises(ValueError, match="required"):
        IgConsent(declined={"instagram_business_basic"})


async def test_cancel_redirects_with_the_error(
    ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    ig.set_person(ANNA, IgConsent(cancel=True))
    location = await authorize(ig, http)
    assert "#" not in location and "code=" not in location
    query = parse_qs(urlsplit(location).query)
    assert query == {
        "error": ["access_denied"],
        "error_reason": ["user_denied"],
        "error_description": ["The user denied your request."],
        "state": ["st-1"],
    }
    ig.set_person(ANNA, IgConsent(error="server_error"))
    failed = parse_qs(urlsplit(await authorize(ig, http)).query)
    assert failed["error"] == ["server_error"] and "code" not in failed


async def test_authorize_errors(ig: InstagramStandin, http: httpx.AsyncClient) -> None:
    ig.set_person(ANNA)
    ig.valid_redirect_uris = [REDIRECT]
    cases = {
        "Invalid platform app": {"client_id": "42"},
        "Invalid redirect_uri": {"redirect_uri": REDIRECT + "?x=1"},
        "Invalid Scopes: business_basic": {"scope": "business_basic"},
        "Invalid Scopes: instagram_business_basic is required": {
            "scope": "instagram_business_manage_insights"
        },
        "No state parameter": {"state": ""},
    }
    for message, overrides in cases.items():
        answer = await http.get(
            f"{ig.base_url}/oauth/authorize", params=authorize_query(ig, **overrides)
        )
        assert answer.status_code == 400
        body = answer.json()
        assert body["error_type"] == "OAuthException" and body["code"] == 400
        assert body["error_message"].startswith(message)
    # A space-separated scope is as good as a comma-separated one.
    assert code_of(await authorize(ig, http, scope=SCOPE.replace(",", " ")))


# -- the code exchange's errors ---------------------------------------------------------------


async def test_code_is_single_use_bound_and_short_lived(
    ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    ig.set_person(ANNA)
    code = code_of(await authorize(ig, http))

    def message(answer: httpx.Response) -> str:
        assert answer.status_code == 400
        body = answer.json()
        assert set(body) == {"error_type", "code", "error_message"} and body["code"] == 400
        text: str = body["error_message"]
        return text

    # Still carrying "#_": not a code Instagram issued.
    assert "not found" in message(await exchange(ig, http, code + "#_"))
    assert "redirect_uri" in message(await exchange(ig, http, code, redirect_uri=REDIRECT + "/"))
    assert message(await exchange(ig, http, code, client_secret="nope")) == (
        "Error validating client secret."
    )
    assert message(await exchange(ig, http, code, client_id="42")) == "Invalid platform app"
    assert (await exchange(ig, http, code)).status_code == 200
    again = await exchange(ig, http, code)
    assert message(again) == "This authorization code has been used"

    late = code_of(await authorize(ig, http))
    ig.fast_forward(seconds=3601)
    assert message(await exchange(ig, http, late)) == "This authorization code has expired"

    fresh = code_of(await authorize(ig, http))
    wrong_method = await http.get(f"{ig.base_url}/oauth/access_token", params={"code": fresh})
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == 405


# -- long-lived tokens and their refresh ------------------------------------------------------


async def test_refresh_rules(ig: InstagramStandin, http: httpx.AsyncClient) -> None:
    token = await log_in(ig, http)

    too_young = await refresh(ig, http, token)
    assert too_young.status_code == 400
    assert graph_error(too_young)["code"] == 100
    assert "24 hours" in graph_error(too_young)["message"]

    ig.fast_forward(days=50)
    refreshed = await refresh(ig, http, token)
    assert refreshed.status_code == 200
    body = refreshed.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 60 * DAY
    new = body["access_token"]
    assert ig.token_info(new).expires_at == pytest.approx(ig.now() + 60 * DAY, abs=5)

    # Eleven days on, the first token has run out; the refreshed one lives on.
    ig.fast_forward(days=11)
    expired = await graph(ig, http, "me", token, fields="username")
    assert expired.status_code == 400
    error = graph_error(expired)
    assert (error["code"], error["error_subcode"]) == (190, 463)
    assert "Session has expired" in error["message"]
    late = await refresh(ig, http, token)
    assert graph_error(late)["code"] == 190
    assert (await graph(ig, http, "me", new, fields="username")).json()["username"] == "anna.bakes"

    # A refreshed token is itself refreshable after 24 hours, again for 60 days.
    assert (await refresh(ig, http, new)).status_code == 200


async def test_short_lived_token_cannot_be_refreshed(
    ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    ig.set_person(ANNA)
    short = await exchange(ig, http, code_of(await authorize(ig, http)))
    value = short.json()["data"][0]["access_token"]
    ig.fast_forward(seconds=1800)
    answer = await refresh(ig, http, value)
    assert graph_error(answer)["code"] == 100
    wrong_secret = await http.get(
        f"{ig.base_url}/access_token",
        params={"grant_type": "ig_exchange_token", "client_secret": "x", "access_token": value},
    )
    assert graph_error(wrong_secret)["code"] == 101
    ig.fast_forward(seconds=1801)
    assert graph_error(await long_lived(ig, http, value))["code"] == 190


# -- insights and media through the reused Graph logic ----------------------------------------


async def test_insights_and_media(ig: InstagramStandin, http: httpx.AsyncClient) -> None:
    token = await log_in(ig, http)
    ig.set_insights(ANNA.id, reach=[100, 200, 300])
    reach = await graph(ig, http, "me/insights", token, metric="reach", period="day")
    assert reach.status_code == 200, reach.text
    values = [v["value"] for v in reach.json()["data"][0]["values"]]
    assert values[-2:] == [200, 300]

    by_id = await graph(
        ig,
        http,
        f"{ANNA.user_id}/insights",
        token,
        metric="follower_demographics",
        period="lifetime",
        metric_type="total_value",
        breakdown="country",
    )
    results = by_id.json()["data"][0]["total_value"]["breakdowns"][0]["results"]
    assert results[0]["dimension_values"] == ["DE"]

    gone = await graph(ig, http, "me/insights", token, metric="impressions", period="day")
    assert "no longer supported" in graph_error(gone)["message"]

    posts = [
        Post("1790001", "Cinnamon rolls", ig.now() - DAY, 400, 20, 3000, 50),
        Post("1790002", "Old one", ig.now() - 9 * DAY, 100, 5, 900, 8, before_conversion=True),
        Post("1790003", "Sourdough", ig.now() - 2 * DAY, 300, 12, 2500, 30),
    ]
    ig.set_posts(ANNA.id, posts)
    media = await graph(ig, http, "me/media", token, fields="id,caption,like_count", limit="2")
    page = media.json()
    assert [p["id"] for p in page["data"]] == ["1790001", "1790003"]
    rest = await http.get(page["paging"]["next"])
    assert [p["id"] for p in rest.json()["data"]] == ["1790002"]

    post = await graph(ig, http, "1790001", token, fields="id,caption,like_count")
    assert post.json() == {"id": "1790001", "caption": "Cinnamon rolls", "like_count": 400}
    figures = await graph(ig, http, "1790001/insights", token, metric="reach,likes")
    assert [d["values"][0]["value"] for d in figures.json()["data"]] == [3000, 400]
    before = await graph(ig, http, "1790002/insights", token, metric="reach")
    assert graph_error(before)["error_subcode"] == 2108006

    # Another account's media or id is not reachable with this token.
    other = await graph(ig, http, "17841499999999999", token)
    assert graph_error(other)["code"] == 100


async def test_personal_account(ig: InstagramStandin, http: httpx.AsyncClient) -> None:
    person = IgPerson("max.private", AccountType.PERSONAL, followers_count=230)
    token = await log_in(ig, http, person)
    me = await graph(ig, http, "me", token, fields="username,account_type")
    assert me.json()["account_type"] == "PERSONAL"
    insights = await graph(ig, http, "me/insights", token, metric="reach", period="day")
    assert graph_error(insights)["code"] == 10


# -- Instagram's side after the login -----------------------------------------------------------


async def test_revoked_and_invalid_tokens(ig: InstagramStandin, http: httpx.AsyncClient) -> None:
    token = await log_in(ig, http)
    unknown = graph_error(await graph(ig, http, "me", "IGAAnot-a-token"))
    assert unknown["code"] == 190 and "error_subcode" not in unknown
    missing = await http.get(f"{ig.base_url}/me")
    assert graph_error(missing)["code"] == 104

    ig.revoke(ANNA.user_id)
    revoked = graph_error(await graph(ig, http, "me", token))
    assert (revoked["code"], revoked["error_subcode"]) == (190, 458)
    assert f"has not authorized application {ig.app_id}" in revoked["message"]
    assert ig.granted(ANNA.id) == []
    assert graph_error(await refresh(ig, http, token))["code"] == 190

    # A new login works again; a password change ends it with 460.
    again = await log_in(ig, http)
    assert (await graph(ig, http, "me", again)).status_code == 200
    ig.change_password(ANNA.id)
    assert graph_error(await graph(ig, http, "me", again))["error_subcode"] == 460


async def test_permission_taken_back_and_profile_changes(
    ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    token = await log_in(ig, http)
    ig.set_profile(ANNA.id, username="anna.bakes.more", followers=20000)
    me = await graph(ig, http, "me", token, fields="username,followers_count")
    assert me.json()["username"] == "anna.bakes.more" and me.json()["followers_count"] == 20000
    ig.remove_permission(ANNA.id, "instagram_business_manage_insights")
    insights = await graph(ig, http, "me/insights", token, metric="reach", period="day")
    assert graph_error(insights)["code"] == 10
    bad_field = await graph(ig, http, "me", token, fields="username,email")
    assert "nonexisting field (email)" in graph_error(bad_field)["message"]


async def test_outage_faults_and_rate_limits(ig: InstagramStandin, http: httpx.AsyncClient) -> None:
    token = await log_in(ig, http)
    ig.set_outage()
    down = await graph(ig, http, "me", token)
    assert down.status_code == 500
    assert graph_error(down)["code"] == 2 and graph_error(down)["is_transient"] is True
    ig.set_person(ANNA)
    code = code_of(await authorize(ig, http))  # the window still opens
    token_down = await exchange(ig, http, code)
    assert token_down.status_code == 500 and token_down.json()["code"] == 500
    ig.set_outage(False)
    assert (await exchange(ig, http, code)).status_code == 200  # the code was not used up

    ig.fail_next("/me", code=4, message="(#4) Application request limit reached")
    assert graph_error(await graph(ig, http, "me", token))["code"] == 4
    assert (await graph(ig, http, "me", token)).status_code == 200

    ig.fast_forward(seconds=3601)  # a fresh hour: the calls above leave the window
    ig.set_rate_limits(user_per_hour=2)
    assert (await graph(ig, http, "me", token)).status_code == 200
    assert (await graph(ig, http, "me", token)).status_code == 200
    limited = await graph(ig, http, "me", token)
    assert graph_error(limited)["code"] == 17 and "X-App-Usage" in limited.headers
    ig.fast_forward(seconds=3601)
    assert (await graph(ig, http, "me", token)).status_code == 200

    ig.fail_network("/me")
    with pytest.raises(httpx.TransportError):
        await graph(ig, http, "me", token)


# -- the sandbox consent page -------------------------------------------------------------------


async def test_consent_page_without_a_scripted_person(
    ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    query = authorize_query(ig)
    page = await http.get(f"{ig.base_url}/oauth/authorize", params=query)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "SANDBOX" in text and "@anna.bakes" in text and "@max.private" in text
    assert 'name="scope_instagram_business_manage_insights"' in text
    assert ig.app_secret not in text

    # Lena logs in as a Personal account and keeps insights to herself.
    form = {**query, "account": "lena.paints", "account_type": "PERSONAL", "action": "allow"}
    answer = await http.post(f"{ig.base_url}/oauth/authorize", data=form)
    assert answer.status_code == 302
    short = await exchange(ig, http, code_of(answer.headers["location"]))
    entry = short.json()["data"][0]
    assert entry["permissions"] == "instagram_business_basic"
    token = (await long_lived(ig, http, entry["access_token"])).json()["access_token"]
    me = await graph(ig, http, "me", token, fields="username,account_type,followers_count")
    assert me.json()["username"] == "lena.paints" and me.json()["account_type"] == "PERSONAL"
    assert me.json()["followers_count"] == 4820

    # Any other username, every permission, a follower count of one's own.
    form = {
        **query,
        "account": "other",
        "other_username": "@new.baker",
        "followers": "1,500",
        "scope_instagram_business_manage_insights": "on",
        "action": "allow",
    }
    answer = await http.post(f"{ig.base_url}/oauth/authorize", data=form)
    short = await exchange(ig, http, code_of(answer.headers["location"]))
    assert short.json()["data"][0]["permissions"] == SCOPE
    assert ig.person(short.json()["data"][0]["user_id"]).followers_count == 1500

    cancel = await http.post(
        f"{ig.base_url}/oauth/authorize", data={**query, "account": "tiny.tom", "action": "cancel"}
    )
    assert parse_qs(urlsplit(cancel.headers["location"]).query)["error"] == ["access_denied"]


async def test_consent_page_refuses_bad_input(
    ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    query = authorize_query(ig)
    bad = {**query, "account": "other", "other_username": "<script>x</script>", "action": "allow"}
    answer = await http.post(f"{ig.base_url}/oauth/authorize", data=bad)
    assert answer.status_code == 400
    assert "Enter an Instagram username" in answer.text and "<script>x" not in answer.text
    for wrong in ({"followers": "many"}, {"account_type": "ROBOT"}, {"action": "maybe"}):
        answer = await http.post(
            f"{ig.base_url}/oauth/authorize",
            data={**query, "account": "anna.bakes", "action": "allow", **wrong},
        )
        assert answer.status_code == 400 and "SANDBOX" in answer.text
    # The window's own checks hold for the form too.
    tampered = {**query, "client_id": "42", "account": "anna.bakes", "action": "allow"}
    answer = await http.post(f"{ig.base_url}/oauth/authorize", data=tampered)
    assert answer.status_code == 400 and answer.json()["error_message"] == "Invalid platform app"


async def test_consent_page_forced_and_complete_authorize(
    ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    ig.set_person(ANNA)
    ig.consent_page = True
    page = await http.get(f"{ig.base_url}/oauth/authorize", params=authorize_query(ig))
    assert page.status_code == 200 and 'value="anna.bakes" checked' in page.text

    location = ig.complete_authorize(authorize_query(ig), ANNA, IgConsent())
    assert (await exchange(ig, http, code_of(location))).status_code == 200
    with pytest.raises(ValueError, match="Invalid platform app"):
        ig.complete_authorize(authorize_query(ig, client_id="1"), ANNA, IgConsent())


async def test_tokens_stay_out_of_reprs(ig: InstagramStandin, http: httpx.AsyncClient) -> None:
    token = await log_in(ig, http)
    assert token not in repr(ig.token_info(token))


async def test_malformed_requests_get_clean_errors(
    ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    token = await log_in(ig, http)
    base = ig.base_url
    answers = [
        await http.get(f"{base}/me", params={"access_token": token, "fields": "id,{"}),
        await http.get(f"{base}/me/media", params={"access_token": token, "after": "%%%"}),
        await http.get(
            f"{base}/me/insights",
            params={"access_token": token, "metric": "reach", "period": "day", "since": "x"},
        ),
        await http.get(f"{base}/me/insights", params={"access_token": token}),
        await http.get(f"{base}/me/friends", params={"access_token": token}),
        await http.post(f"{base}/me", data={"access_token": token}),
        await http.get(f"{base}/", params={"access_token": token}),
        await http.get(f"{base}/access_token", params={"grant_type": "nope"}),
        await http.get(f"{base}/refresh_access_token", params={"access_token": token}),
        await http.post(f"{base}/oauth/access_token", json={"code": "x"}),
        await http.post(f"{base}/oauth/access_token", content=b"\xff\xfe"),
        await http.get(f"{base}/oauth/authorize"),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, (answer.request.url, answer.text)
        body = answer.json()
        assert "error" in body or "error_message" in body
        assert token not in answer.text and ig.app_secret not in answer.text


async def test_consent_page_keeps_the_accounts_own_type(
    ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    """An account switched to personal stays personal when its person just presses Allow (a
    Reconnect while still personal is refused, as at Instagram)."""
    ig.consent_page = True
    ig.set_person(IgPerson("max.private", AccountType.PERSONAL))
    page = await http.get(f"{ig.base_url}/oauth/authorize", params=authorize_query(ig))
    assert '<option value="PERSONAL" selected>' in page.text
    assert '<option value="BUSINESS" selected>' not in page.text
    ig.set_person(IgPerson("anna.bakes"))
    page = await http.get(f"{ig.base_url}/oauth/authorize", params=authorize_query(ig))
    assert '<option value="BUSINESS" selected>' in page.text
