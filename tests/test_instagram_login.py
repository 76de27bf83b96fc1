"""Instagram Login's core pieces (issue 13): the settings, the client (`bot.instagram_login`)
against the real Instagram stand-in over loopback, and the pure verdict
(`bot.instagram_verdict`) for every outcome, including hostile shapes. No database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bot.config import ConfigError, load_settings
from bot.graph import GraphError
from bot.health import ProblemKind
from bot.instagram_login import InstagramClient, InstagramError
from bot.instagram_verdict import (
    IgLoginEvidence,
    IgOutcome,
    IgVerdict,
    decide,
    parse_account,
    parse_permissions,
)
from bot.profiles import read_profile
from bot.verdict import FetchFailure, Outcome
from sandbox.instagram import AccountType, ExchangeShape, IgConsent, IgPerson, InstagramStandin

REDIRECT = "https://connect.example/oauth/instagram"
BASIC = "instagram_business_basic"
INSIGHTS = "instagram_business_manage_insights"
SCOPES = (BASIC, INSIGHTS)
DAY = 86400
ANNA = IgPerson("anna.bakes", name="Anna Bakes", followers_count=12345, media_count=310)
OLD = IgPerson("anna_old", followers_count=80)
PRIVATE = IgPerson("anna.bakes", AccountType.PERSONAL, id="2999", user_id="17841999")


@pytest.fixture
async def ig() -> AsyncIterator[InstagramStandin]:
    standin = InstagramStandin()
    await standin.start()
    yield standin
    await standin.stop()
    assert not standin.internal_errors


@pytest.fixture
async def client(ig: InstagramStandin) -> AsyncIterator[InstagramClient]:
    instagram = InstagramClient(
        app_id=ig.app_id,
        app_secret=ig.app_secret,
        scopes=SCOPES,
        authorize_url=ig.base_url,
        token_url=ig.base_url,
        graph_url=ig.base_url,
        version="v25.0",
    )
    yield instagram
    await instagram.aclose()


async def open_window(
    client: InstagramClient,
    http: httpx.AsyncClient,
    ig: InstagramStandin,
    person: IgPerson = ANNA,
    consent: IgConsent | None = None,
) -> str:
    """The person opens the bot's authorize URL; returns where Instagram sends the browser."""
    ig.set_person(person, consent)
    answer = await http.get(client.authorize_url(state="st-1", redirect_uri=REDIRECT))
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def redirect_params(location: str) -> dict[str, str]:
    """The callback's query as the server sees it (the browser never sends the fragment)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def raw_code(location: str) -> str:
    """The code as someone taking the URL apart by hand gets it: with Instagram's "#_"."""
    code = location.split("code=", 1)[1]
    assert code.endswith("#_")
    return code


async def logged_in(client: InstagramClient, http: httpx.AsyncClient, ig: InstagramStandin) -> str:
    location = await open_window(client, http, ig)
    short = await client.exchange_code(code=raw_code(location), redirect_uri=REDIRECT)
    return (await client.long_lived(short.access_token)).access_token


# --- settings ------------------------------------------------------------------------------------


def test_without_instagram_settings_nothing_changes() -> None:
    settings = load_settings(_env_file=None)
    assert not settings.instagram_login_configured
    assert settings.instagram_scopes == SCOPES
    assert settings.instagram_authorize_url == "https://www.instagram.com"
    assert settings.instagram_token_url == "https://api.instagram.com"
    assert settings.instagram_graph_url == "https://graph.instagram.com"
    assert settings.configured_credentials() == []
    real = {"telegram_bot_token": "1:abc", "facebook_app_id": "1", "facebook_app_secret": "s"}
    load_settings(_env_file=None, **real, verify_only=True).require_real_credentials()


def test_instagram_settings_read_and_checked() -> None:
    settings = load_settings(
        _env_file=None,
        instagram_app_id="9876543210",
        instagram_app_secret="ig-secret-value",
        instagram_scopes=f" {BASIC} , {INSIGHTS},{BASIC}",
        instagram_graph_url="http://127.0.0.1:9/",
    )
    assert settings.instagram_login_configured
    assert settings.instagram_scopes == SCOPES
    assert settings.instagram_graph_url == "http://127.0.0.1:9"
    assert settings.instagram_redirect_uri == "http://127.0.0.1:8080/oauth/instagram"
    assert settings.configured_credentials() == ["INSTAGRAM_APP_ID", "INSTAGRAM_APP_SECRET"]
    assert "ig-secret-value" not in repr(settings) and "ig-secret-value" not in str(settings)

    with pytest.raises(
        ConfigError, match="INSTAGRAM_SCOPES is invalid: .*instagram_business_basic"
    ):
        load_settings(_env_file=None, instagram_scopes=INSIGHTS)
    with pytest.raises(ConfigError, match="INSTAGRAM_SCOPES is invalid"):
        load_settings(_env_file=None, instagram_scopes=" , ")
    with pytest.raises(ConfigError, match="INSTAGRAM_TOKEN_URL is invalid"):
        load_settings(_env_file=None, instagram_token_url="api.instagram.com")


@pytest.mark.parametrize(
    ("pair", "named"),
    [
        ({"instagram_app_id": "987"}, "INSTAGRAM_APP_SECRET is not set"),
        ({"instagram_app_secret": "shh"}, "INSTAGRAM_APP_ID is not set or not numeric"),
        ({"instagram_app_id": "abc", "instagram_app_secret": "shh"}, "INSTAGRAM_APP_ID"),
    ],
)
def test_half_an_instagram_app_stops_start_up(pair: dict[str, str], named: str) -> None:
    real = {"telegram_bot_token": "1:abc", "facebook_app_id": "1", "facebook_app_secret": "s"}
    settings = load_settings(_env_file=None, **real, **pair, verify_only=True)
    assert not settings.instagram_login_configured
    with pytest.raises(ConfigError, match=named) as caught:
        settings.require_real_credentials()
    assert "shh" not in str(caught.value)


# --- the authorize URL and the code exchange -----------------------------------------------------


async def test_authorize_url_opens_instagrams_window(
    client: InstagramClient, ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    url = client.authorize_url(state="st-1", redirect_uri=REDIRECT)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{ig.base_url}/oauth/authorize"
    assert parse_qs(parts.query) == {
        "client_id": [ig.app_id],
        "redirect_uri": [REDIRECT],
        "response_type": ["code"],
        "scope": [f"{BASIC},{INSIGHTS}"],
        "state": ["st-1"],
    }
    forced = client.authorize_url(state="st-2", redirect_uri=REDIRECT, force_reauth=True)
    assert parse_qs(urlsplit(forced).query)["force_reauth"] == ["true"]

    location = await open_window(client, http, ig)
    assert location.startswith(REDIRECT + "?") and redirect_params(location)["state"] == "st-1"
    assert ig.authorize_requests[-1]["scope"] == f"{BASIC},{INSIGHTS}"


@pytest.mark.parametrize("shape", [ExchangeShape.DATA, ExchangeShape.FLAT])
async def test_exchange_takes_both_shapes_and_strips_the_suffix(
    client: InstagramClient, ig: InstagramStandin, http: httpx.AsyncClient, shape: ExchangeShape
) -> None:
    ig.exchange_shape = shape
    location = await open_window(client, http, ig, consent=IgConsent(declined={INSIGHTS}))
    exchange = await client.exchange_code(code=raw_code(location), redirect_uri=REDIRECT)
    assert exchange.user_id == ANNA.id and isinstance(exchange.user_id, str)
    assert exchange.permissions == (BASIC,)
    assert ig.token_info(exchange.access_token).account_id == ANNA.id
    assert exchange.access_token not in repr(exchange)
    # Sent once, as a form in a POST, without the "#_".
    posts = [(m, p) for m, p, _ in ig.requests if p == "/oauth/access_token"]
    assert posts == [("POST", "/oauth/access_token")]
    form = next(f for _, p, f in ig.requests if p == "/oauth/access_token")
    assert form["code"] == redirect_params(location)["code"] and not form["code"].endswith("#_")


async def test_a_code_is_used_once_and_expires(
    client: InstagramClient, ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    code = raw_code(await open_window(client, http, ig))
    await client.exchange_code(code=code, redirect_uri=REDIRECT)
    with pytest.raises(InstagramError) as used:
        await client.exchange_code(code=code, redirect_uri=REDIRECT)
    assert used.value.token_endpoint and used.value.http_status == 400
    assert used.value.failure is FetchFailure.CODE_REJECTED
    assert "has been used" in str(used.value) and code.removesuffix("#_") not in str(used.value)
    assert isinstance(used.value, GraphError)

    late = raw_code(await open_window(client, http, ig))
    ig.fast_forward(seconds=3601)
    with pytest.raises(InstagramError, match="has expired") as expired:
        await client.exchange_code(code=late, redirect_uri=REDIRECT)
    assert expired.value.failure is FetchFailure.CODE_REJECTED
    assert expired.value.problem.kind is ProblemKind.BAD_REQUEST

    with pytest.raises(InstagramError, match="not found") as unknown:
        await client.exchange_code(code="made-up", redirect_uri=REDIRECT)
    assert unknown.value.failure is FetchFailure.CODE_REJECTED


async def test_exchange_failures_say_whose_problem(
    client: InstagramClient, ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    ig.set_outage(True)
    code = raw_code(await open_window(client, http, ig))
    with pytest.raises(InstagramError) as down:
        await client.exchange_code(code=code, redirect_uri=REDIRECT)
    assert down.value.failure is FetchFailure.UNAVAILABLE
    assert down.value.problem.kind is ProblemKind.TRANSIENT
    ig.set_outage(False)

    ig.fail_next("/oauth/access_token", code=4, message="Too many calls", http_status=429)
    with pytest.raises(InstagramError) as throttled:
        await client.exchange_code(code=code, redirect_uri=REDIRECT)
    assert throttled.value.failure is FetchFailure.RATE_LIMITED
    assert throttled.value.problem.kind is ProblemKind.RATE_LIMITED

    # The connection dropped before the answer: never sent again (the code may be spent).
    before = len(ig.requests)
    ig.fail_network("/oauth/access_token")
    with pytest.raises(InstagramError) as dropped:
        await client.exchange_code(code=code, redirect_uri=REDIRECT)
    assert dropped.value.failure is FetchFailure.UNAVAILABLE
    assert len(ig.requests) == before + 1
    assert code.removesuffix("#_") not in str(dropped.value)

    wrong = InstagramClient(
        app_id=ig.app_id,
        app_secret="not-the-secret",
        scopes=SCOPES,
        token_url=ig.base_url,
        graph_url=ig.base_url,
    )
    try:
        with pytest.raises(InstagramError, match="client secret") as refused:
            await wrong.exchange_code(code=code, redirect_uri=REDIRECT)
        assert "not-the-secret" not in str(refused.value) + repr(wrong)
    finally:
        await wrong.aclose()


# --- long-lived tokens and their refresh ---------------------------------------------------------


async def test_long_lived_token_and_refresh_rules(
    client: InstagramClient, ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    location = await open_window(client, http, ig)
    short = await client.exchange_code(code=raw_code(location), redirect_uri=REDIRECT)
    long = await client.long_lived(short.access_token)
    assert long.expires_in == 60 * DAY and long.token_type == "bearer"
    assert long.access_token != short.access_token and long.access_token not in repr(long)

    # A long-lived token is not exchanged again; a short one is not refreshed.
    with pytest.raises(InstagramError) as again:
        await client.long_lived(long.access_token)
    assert again.value.code == 100 and not again.value.token_endpoint
    with pytest.raises(InstagramError) as short_refresh:
        await client.refresh(short.access_token)
    assert short_refresh.value.code == 100

    # Too young (under 24 hours): refused with a plain 100, the token itself is fine.
    with pytest.raises(InstagramError, match="24 hours") as young:
        await client.refresh(long.access_token)
    assert young.value.problem.kind is ProblemKind.BAD_REQUEST

    ig.fast_forward(days=50)
    refreshed = await client.refresh(long.access_token)
    assert refreshed.expires_in == 60 * DAY and refreshed.access_token != long.access_token
    assert ig.token_info(refreshed.access_token).expires_at == pytest.approx(
        ig.now() + 60 * DAY, abs=5
    )
    # The old value keeps working until its own expiry (10 more days), then it is gone.
    assert (await client.me(long.access_token))["username"] == "anna.bakes"
    ig.fast_forward(days=11)
    with pytest.raises(InstagramError) as gone:
        await client.refresh(long.access_token)
    assert (gone.value.code, gone.value.subcode) == (190, 463)
    assert gone.value.problem.kind is ProblemKind.TOKEN_EXPIRED
    assert (await client.me(refreshed.access_token))["username"] == "anna.bakes"
    # The refreshed token is refreshable in turn.
    assert (await client.refresh(refreshed.access_token)).expires_in == 60 * DAY


async def test_removed_app_and_changed_password_are_told_apart(
    client: InstagramClient, ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    token = await logged_in(client, http, ig)
    ig.fast_forward(days=2)
    ig.change_password(ANNA.id)
    with pytest.raises(InstagramError) as changed:
        await client.refresh(token)
    assert changed.value.problem.kind is ProblemKind.PASSWORD_CHANGED

    token = await logged_in(client, http, ig)
    ig.revoke(ANNA.id)
    with pytest.raises(InstagramError) as removed:
        await client.me(token)
    assert removed.value.problem.kind is ProblemKind.APP_REMOVED
    assert token not in str(removed.value) + repr(removed.value)


# --- /me and the reads ---------------------------------------------------------------------------


async def test_me_names_the_account(
    client: InstagramClient, ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    token = await logged_in(client, http, ig)
    me = await client.me(token)
    account = parse_account(me)
    assert account is not None
    assert (account.id, account.user_id, account.instagram_id) == (
        ANNA.id,
        ANNA.user_id,
        ANNA.user_id,
    )
    assert account.username == "anna.bakes" and account.account_type == "BUSINESS"
    assert (account.followers_count, account.media_count) == (12345, 310)
    assert account.professional is True and account.name == "Anna Bakes"
    # Reads are versioned, and carry the token in the query (no appsecret_proof on this host).
    method, path, params = ig.requests[-1]
    assert (method, path) == ("GET", "/v25.0/me") and "appsecret_proof" not in params


async def test_read_errors_are_sorted(
    client: InstagramClient, ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    token = await logged_in(client, http, ig)
    ig.fail_next("/me", code=4, message="(#4) Application request limit reached")
    with pytest.raises(InstagramError) as limited:
        await client.me(token)
    assert limited.value.failure is FetchFailure.RATE_LIMITED
    ig.set_outage(True)
    with pytest.raises(InstagramError) as down:
        await client.read("/me", {"fields": "username"}, token=token)
    assert down.value.problem.kind is ProblemKind.TRANSIENT
    ig.set_outage(False)
    # A paging link is followed with our token (once), keeping its other parameters.
    first = await client.read("/me/media", {"fields": "id", "limit": "2"}, token=token)
    assert len(first["data"]) == 2
    second = await client.read(first["paging"]["next"], {}, token=token)
    assert second["data"] and second["data"][0] not in first["data"]
    _, _, sent = ig.requests[-1]
    assert sent["access_token"] == token and sent["limit"] == "2"
    # The token goes nowhere but the configured Graph host.
    with pytest.raises(InstagramError, match="not the Instagram Graph host"):
        await client.read("https://elsewhere.example/me", {}, token=token)
    assert not any("elsewhere" in path for _, path, _ in ig.requests)


async def test_profile_figures_read_on_this_path(
    client: InstagramClient, ig: InstagramStandin, http: httpx.AsyncClient
) -> None:
    """`bot.profiles.read_profile` reads through this client as through GraphClient."""
    token = await logged_in(client, http, ig)
    profile = await read_profile(client, ANNA.user_id, token)
    assert profile.account.username == "anna.bakes"
    assert profile.account.followers == 12345
    assert profile.posts and profile.activity is not None
    body = await client.read("/me", {"fields": "profile_picture_url"}, token=token)
    picture = await client.picture(str(body["profile_picture_url"]))
    assert picture is not None and picture.startswith(b"\x89PNG")
    assert await client.picture("file:///etc/passwd") is None
    ig.fast_forward(days=4)  # the CDN address has expired
    assert await client.picture(str(body["profile_picture_url"])) is None


# --- the whole login, gathered and judged --------------------------------------------------------


def judge(gathered_evidence: IgLoginEvidence, invited: str = "@Anna.Bakes") -> IgVerdict:
    return decide(gathered_evidence, invited_handle=invited, requested_scopes=SCOPES)


@pytest.mark.parametrize(
    ("person", "consent", "outcome"),
    [
        (ANNA, None, IgOutcome.CONNECTED),
        (ANNA, IgConsent(cancel=True), IgOutcome.CANCELLED),
        (ANNA, IgConsent(error="server_error"), IgOutcome.LOGIN_ERROR),
        (ANNA, IgConsent(declined={INSIGHTS}), IgOutcome.SCOPES_DECLINED),
        (OLD, None, IgOutcome.OTHER_ACCOUNT),
        (PRIVATE, None, IgOutcome.NOT_PROFESSIONAL),
    ],
)
async def test_gather_and_decide(
    client: InstagramClient,
    ig: InstagramStandin,
    http: httpx.AsyncClient,
    person: IgPerson,
    consent: IgConsent | None,
    outcome: IgOutcome,
) -> None:
    location = await open_window(client, http, ig, person, consent)
    gathered = await client.gather(redirect=redirect_params(location), redirect_uri=REDIRECT)
    verdict = judge(gathered.evidence)
    assert verdict.outcome is outcome
    if outcome is IgOutcome.CONNECTED:
        assert gathered.token is not None and gathered.token.expires_in == 60 * DAY
        assert verdict.account is not None and verdict.account.followers_count == 12345
        assert verdict.granted == SCOPES and not verdict.person_can_fix
    if outcome is IgOutcome.SCOPES_DECLINED:
        assert verdict.declined == (INSIGHTS,) and verdict.person_can_fix
    if outcome is IgOutcome.OTHER_ACCOUNT:
        assert verdict.other_account == "anna_old"
    if outcome in (IgOutcome.CANCELLED, IgOutcome.LOGIN_ERROR):
        assert gathered.token is None and not any(
            p == "/oauth/access_token" for _, p, _ in ig.requests
        )


async def test_gather_when_instagram_fails(
    client: InstagramClient,
    ig: InstagramStandin,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot")
    # The code used twice (a reload of the callback page): login expired, nothing else tried.
    params = redirect_params(await open_window(client, http, ig))
    first = await client.gather(redirect=params, redirect_uri=REDIRECT)
    assert judge(first.evidence).connected
    again = await client.gather(redirect=params, redirect_uri=REDIRECT)
    assert judge(again.evidence).outcome is IgOutcome.LOGIN_EXPIRED and again.token is None

    ig.set_outage(True)
    down = await client.gather(
        redirect=redirect_params(await open_window(client, http, ig)), redirect_uri=REDIRECT
    )
    assert judge(down.evidence).outcome is IgOutcome.UNAVAILABLE
    ig.set_outage(False)

    # Throttled after the code was spent: rate-limited, and the token is still handed back.
    ig.fail_next("/me", code=17, message="(#17) User request limit reached")
    throttled = await client.gather(
        redirect=redirect_params(await open_window(client, http, ig)), redirect_uri=REDIRECT
    )
    assert judge(throttled.evidence).outcome is IgOutcome.RATE_LIMITED
    assert throttled.token is not None

    # /me refused after a good exchange (a 190): not the person's doing, so "unavailable".
    ig.fail_next("/me", code=190, message="Invalid OAuth access token")
    refused = await client.gather(
        redirect=redirect_params(await open_window(client, http, ig)), redirect_uri=REDIRECT
    )
    assert judge(refused.evidence).outcome is IgOutcome.UNAVAILABLE

    secrets = [ig.app_secret, *ig.issued_tokens(), *ig.issued_codes()]
    ours = [r for r in caplog.records if r.name.startswith("bot")]
    logged = "".join(r.getMessage() for r in ours) + "".join(
        repr(g) for g in (first, again, down, throttled, refused)
    )
    assert "instagram code exchange failed" in logged
    assert not [s for s in secrets if s in logged]


# --- the verdict, pure ---------------------------------------------------------------------------

ME = {
    "id": "2123",
    "user_id": "17841400000000001",
    "username": "anna.bakes",
    "account_type": "MEDIA_CREATOR",
    "followers_count": 4820,
    "media_count": 12,
}
CODE = {"code": "abc", "state": "st"}


def evidence(**fields: Any) -> IgLoginEvidence:
    values: dict[str, Any] = {"redirect": CODE, "granted": f"{BASIC},{INSIGHTS}", "me": ME}
    values.update(fields)
    return IgLoginEvidence(**values)


@pytest.mark.parametrize(
    ("given", "outcome"),
    [
        ({}, IgOutcome.CONNECTED),
        ({"granted": [INSIGHTS.upper(), f" {BASIC} "]}, IgOutcome.CONNECTED),
        ({"granted": f"{BASIC} {INSIGHTS}"}, IgOutcome.CONNECTED),
        ({"me": {**ME, "account_type": "business"}}, IgOutcome.CONNECTED),
        ({"me": {**ME, "account_type": None}}, IgOutcome.CONNECTED),
        ({"me": {**ME, "username": "@Anna.Bakes"}}, IgOutcome.CONNECTED),
        ({"me": {**ME, "followers_count": "many"}}, IgOutcome.CONNECTED),
        (
            {"redirect": {"error": "access_denied", "error_reason": "user_denied"}},
            IgOutcome.CANCELLED,
        ),
        ({"redirect": {"error": "ACCESS_DENIED", "code": "abc"}}, IgOutcome.CANCELLED),
        ({"redirect": {"error": "server_error"}}, IgOutcome.LOGIN_ERROR),
        ({"redirect": {"state": "st"}}, IgOutcome.LOGIN_ERROR),
        ({"redirect": {"code": "  "}}, IgOutcome.LOGIN_ERROR),
        ({"redirect": {"code": ["abc"]}}, IgOutcome.LOGIN_ERROR),
        ({"redirect": ["code", "abc"]}, IgOutcome.LOGIN_ERROR),
        ({"redirect": None}, IgOutcome.LOGIN_ERROR),
        ({"failure": FetchFailure.CODE_REJECTED}, IgOutcome.LOGIN_EXPIRED),
        ({"failure": FetchFailure.RATE_LIMITED}, IgOutcome.RATE_LIMITED),
        ({"failure": FetchFailure.UNAVAILABLE}, IgOutcome.UNAVAILABLE),
        ({"failure": "something else"}, IgOutcome.UNAVAILABLE),
        ({"me": None}, IgOutcome.UNAVAILABLE),
        ({"me": [ME]}, IgOutcome.UNAVAILABLE),
        ({"me": {**ME, "username": 42}}, IgOutcome.UNAVAILABLE),
        ({"me": {**ME, "username": "@"}}, IgOutcome.UNAVAILABLE),
        ({"me": {"username": "anna.bakes"}}, IgOutcome.UNAVAILABLE),
        ({"me": {**ME, "username": "anna_old"}}, IgOutcome.OTHER_ACCOUNT),
        ({"me": {**ME, "account_type": "PERSONAL"}}, IgOutcome.NOT_PROFESSIONAL),
        ({"me": {**ME, "account_type": "PERSONAL"}, "granted": BASIC}, IgOutcome.NOT_PROFESSIONAL),
        ({"me": {**ME, "account_type": 7}}, IgOutcome.CONNECTED),
        ({"granted": BASIC}, IgOutcome.SCOPES_DECLINED),
        ({"granted": None}, IgOutcome.SCOPES_DECLINED),
        ({"granted": {"permissions": BASIC}}, IgOutcome.SCOPES_DECLINED),
        ({"granted": 12}, IgOutcome.SCOPES_DECLINED),
        ({"granted": [BASIC, None, 3, {"x": 1}]}, IgOutcome.SCOPES_DECLINED),
    ],
)
def test_verdict(given: dict[str, Any], outcome: IgOutcome) -> None:
    assert judge(evidence(**given)).outcome is outcome


def test_verdict_details() -> None:
    declined = judge(evidence(granted=BASIC))
    assert declined.declined == (INSIGHTS,) and declined.granted == (BASIC,)
    assert declined.account is not None and declined.person_can_fix
    none_granted = decide(
        evidence(granted=""),
        invited_handle="anna.bakes",
        requested_scopes=(INSIGHTS, BASIC, INSIGHTS, " "),
    )
    assert none_granted.declined == (INSIGHTS, BASIC)

    other = judge(evidence(me={**ME, "username": "Anna_Old"}))
    assert other.other_account == "anna_old" and other.person_can_fix
    # The other account wins over what else is wrong with it: it is not the one to connect.
    assert (
        judge(evidence(me={**ME, "username": "x", "account_type": "PERSONAL"}, granted=BASIC))
    ).outcome is IgOutcome.OTHER_ACCOUNT
    assert judge(evidence()).other_account is None

    connected = judge(evidence(), invited="instagram.com/anna.bakes/")
    assert connected.connected and connected.account is not None
    assert connected.account.instagram_id == "17841400000000001"
    assert (connected.account.followers_count, connected.account.media_count) == (4820, 12)
    no_pro_id = parse_account({"id": 2123, "username": "anna.bakes", "followers_count": -3})
    assert no_pro_id is not None and no_pro_id.instagram_id == "2123"
    assert no_pro_id.followers_count is None and no_pro_id.professional is None

    for outcome in (IgOutcome.UNAVAILABLE, IgOutcome.RATE_LIMITED):
        assert not IgVerdict(outcome).person_can_fix
    for outcome in (IgOutcome.CANCELLED, IgOutcome.LOGIN_EXPIRED, IgOutcome.NOT_PROFESSIONAL):
        assert IgVerdict(outcome).person_can_fix


def test_outcome_values_share_only_same_meanings() -> None:
    """A value equal to one of Facebook's outcomes means the same thing (the catalogs can share
    its text); every other value is the Instagram path's own."""
    shared = {o.value for o in IgOutcome} & {o.value for o in Outcome}
    assert shared == {"connected", "cancelled", "login_error", "login_expired"}
    assert all(o.value.startswith("instagram_") for o in IgOutcome if o.value not in shared)


def test_permissions_in_both_shapes() -> None:
    assert parse_permissions(f"{BASIC},{INSIGHTS}") == SCOPES
    assert parse_permissions([BASIC, INSIGHTS, BASIC]) == SCOPES
    assert parse_permissions("") == () and parse_permissions(None) == ()
    assert parse_permissions((BASIC,)) == (BASIC,)
