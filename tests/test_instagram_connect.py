"""Instagram Login end to end (issue 13), through the Telegram and Instagram stand-ins, on SQLite
and PostgreSQL: the login button of the Instagram path, its authorize URL, the /oauth/instagram
callback and each verdict told to both sides, stored, on the live card and on the page."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from bot.i18n import Texts
from bot.logs import LOG_FORMAT, RedactingFormatter, secrets_of
from bot.store.logins import RenewalRefused
from sandbox.facebook import Consent
from sandbox.instagram import AccountType, IgConsent, IgPerson, TokenKind
from sandbox.telegram import SentMessage, TgUser
from tests.world import (
    ANNA,
    BEN,
    MANAGER,
    World,
    anna_on_facebook,
    close_world,
    is_login_url,
    make_world,
)

IG_SCOPES = "instagram_business_basic,instagram_business_manage_insights"
ANNA_IG = IgPerson("anna.bakes", name="Anna Bakes", followers_count=12345, media_count=310)


@pytest.fixture
async def ig_world(database_url: str) -> AsyncIterator[World]:
    """The whole product with Instagram Login configured (the second Meta app, on its stand-in)."""
    w = await make_world(database_url, instagram=True)
    try:
        yield w
    finally:
        await close_world(w)
    assert not w.instagram.internal_errors


async def _execute(world: World, sql: str) -> None:
    async with world.db.engine.begin() as conn:
        await conn.execute(sa.text(sql))


def _has_login_button(world: World, user: TgUser) -> bool:
    return any(
        "url" in b and is_login_url(str(b["url"]))
        for m in world.telegram.messages(user.id)
        for row in m.buttons
        for b in row
    )


async def _to_facebook_login(world: World, user: TgUser, handle: str) -> None:
    """Invited, opened, every question answered "yes" until a login button is in the chat (the
    Facebook path: the Page is linked)."""
    token = await world.invite(handle)
    await world.open_link(user, token)
    yes = "Ja" if user.language_code == "de" else "Yes"
    for _ in range(5):
        if _has_login_button(world, user):
            return
        await world.answer(user, yes)
    raise AssertionError("no login button after the checks")


async def _to_instagram_login(
    world: World, user: TgUser = ANNA, handle: str = "@anna.bakes"
) -> SentMessage:
    """The influencer has the Instagram path's login button, the real way: invited, opened,
    "No" to "linked to a Facebook Page you manage?", "Yes" to "a professional account?"."""
    german = user.language_code == "de"
    token = await world.invite(handle)
    await world.open_link(user, token)
    await world.answer(user, "Nein" if german else "No")
    login = await world.answer(user, "Ja" if german else "Yes")
    assert _has_login_button(world, user), login.text
    return login


async def _window(
    world: World, user: TgUser, person: IgPerson, consent: IgConsent | None = None
) -> str:
    """Tap the login button; Instagram's window answers at once: where it sends the browser
    (our /oauth/instagram with state and code), without going there."""
    world.instagram.set_person(person, consent)
    window = await world.browser.get(world.login_url(user))
    assert window.status_code == 302, window.text
    return str(window.headers["location"])


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def _card(world: World, contains: str) -> SentMessage:
    return await world.telegram.wait_for(MANAGER.id, contains)


async def test_instagram_login_connects_and_tells_both_sides(
    ig_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world = ig_world
    caplog.set_level(logging.DEBUG)
    login = await _to_instagram_login(world)
    assert "Step 2 of 2" in login.text and "Log in with Instagram" in login.text
    assert "see your Instagram profile and posts" in login.text  # permissions in plain words
    assert "read your Instagram insights (reach, audience)" in login.text
    assert "@anna.bakes" in login.text
    labels = [b["text"] for row in login.buttons for b in row]
    assert "🔐 Log in with Instagram" in labels and "🔄 New login link" in labels
    [(path,)] = await world.rows("SELECT path FROM login_attempt ORDER BY id DESC LIMIT 1")
    assert path == "instagram"

    # The button opens our /oauth/start, which sends the browser on to Instagram's window with
    # exactly the documented parameters.
    assert world.login_url(ANNA).startswith(f"{world.settings.public_url}/oauth/start?state=")
    authorize = urlsplit(await world.dialog_url(ANNA))
    assert f"{authorize.scheme}://{authorize.netloc}" == world.instagram.base_url
    assert authorize.path == "/oauth/authorize"
    params = _query(authorize.geturl())
    assert set(params) == {"client_id", "redirect_uri", "response_type", "scope", "state"}
    assert params["client_id"] == world.instagram.app_id
    assert params["redirect_uri"] == f"{world.settings.public_url}/oauth/instagram"
    assert params["response_type"] == "code"
    assert params["scope"] == IG_SCOPES
    assert len(params["state"]) >= 40

    page = await world.instagram_login(ANNA, ANNA_IG)
    assert page.status_code == 200, page.text
    assert "Connected" in page.text and "@anna.bakes" in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"

    told = await world.telegram.wait_for(ANNA.id, "Connected!")
    assert (
        "Instagram @anna.bakes (12,345 followers) is now connected with Brandly through "
        "Instagram Login" in told.text
    )
    news = await world.telegram.wait_for(MANAGER.id, "is connected")
    assert "@anna.bakes" in news.text and "through Instagram Login" in news.text
    assert "12,345 followers" in news.text
    await _card(world, "Connected: Instagram @anna.bakes")

    [(status, step, reason)] = await world.rows("SELECT status, step, last_reason FROM invitation")
    assert (status, step, reason) == ("connected", "done", None)
    [conn] = await world.rows(
        "SELECT path, facebook_user_id, page_id, page_name, instagram_id, instagram_username, "
        "followers_count, permissions, token_encrypted, token_expires_at, "
        "data_access_expires_at, page_token_encrypted, next_check_at FROM connection"
    )
    person = world.instagram.person(ANNA_IG.id)
    assert conn[:7] == ("instagram", "", "", "", person.user_id, "anna.bakes", 12345)
    assert str(conn[7]).split(",") == IG_SCOPES.split(",")
    sealed = str(conn[8])
    issued = world.instagram.issued_tokens()
    assert sealed and all(t not in sealed for t in issued)
    kept = world.bot.vault.open(sealed)
    assert kept in issued
    assert world.instagram.token_info(kept).kind is TokenKind.LONG  # the 60-day token
    expires = _as_datetime(conn[9])
    now = datetime.now(UTC)
    assert now + timedelta(days=59) < expires < now + timedelta(days=61)
    assert conn[10] is None and conn[11] is None and conn[12] is not None
    [(outcome,)] = await world.rows("SELECT outcome FROM login_attempt WHERE used_at IS NOT NULL")
    assert outcome == "connected"
    kinds = [k for (k,) in await world.rows("SELECT kind FROM invitation_event ORDER BY id")]
    assert kinds[-1] == "verdict" and "login_started" in kinds

    # Neither the code nor the token in a log line (as `python -m bot` formats them) or the page.
    secrets = [*world.instagram.issued_codes(), *issued, world.instagram.app_secret]
    formatter = RedactingFormatter(LOG_FORMAT, secrets_of(world.settings))
    logged = "\n".join(formatter.format(r) for r in caplog.records)
    ours = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("bot", "web_callback"))
    )
    assert caplog.records
    for secret in secrets:
        assert secret not in logged and secret not in ours and secret not in page.text


def _as_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


FAILURES = [
    pytest.param(
        ANNA_IG,
        IgConsent(cancel=True),
        ["You cancelled the Instagram login", "log in as @anna.bakes"],
        "closed Instagram's login window",
        "cancelled",
        "cancelled the login",
        id="cancelled",
    ),
    pytest.param(
        ANNA_IG,
        IgConsent(declined={"instagram_business_manage_insights"}),
        [
            "One permission was not granted in Instagram's window:\n"
            "• read your Instagram insights (reach, audience)",
            "leave this permission switched on",
        ],
        "a permission was declined in Instagram's window, so the platform may not read their "
        "Instagram insights (reach, audience).",
        "instagram_scopes_declined",
        "Instagram permissions declined",
        id="scopes-declined",
    ),
    pytest.param(
        IgPerson("anna_old", followers_count=80),
        None,
        [
            "You logged in to Instagram as @anna_old, but the invitation is for @anna.bakes.",
            "Log out of Instagram in your browser (or switch accounts",
        ],
        "they logged in to Instagram as @anna_old, not as @anna.bakes.",
        "instagram_other_account",
        "logged in as another Instagram account",
        id="other-account",
    ),
    pytest.param(
        IgPerson("anna.bakes", AccountType.PERSONAL),
        None,
        ["@anna.bakes is a personal Instagram account.", "Switch to professional account"],
        "@anna.bakes is a personal Instagram account, not a professional",
        "instagram_not_professional",
        "personal Instagram account",
        id="personal-account",
    ),
]


@pytest.mark.parametrize(
    ("person", "consent", "influencer_says", "manager_says", "outcome", "card_says"), FAILURES
)
async def test_each_failed_instagram_login_is_told_to_both_sides(
    ig_world: World,
    person: IgPerson,
    consent: IgConsent | None,
    influencer_says: list[str],
    manager_says: str,
    outcome: str,
    card_says: str,
) -> None:
    world = ig_world
    await _to_instagram_login(world)
    page = await world.instagram_login(ANNA, person, consent)
    assert page.status_code == 200 and "Not connected yet" in page.text

    told = await world.telegram.wait_for(ANNA.id, "Not connected yet")
    for words in influencer_says:
        assert words in told.text
    assert [b["text"] for row in told.buttons for b in row] == ["🔁 Try again"]
    news = await world.telegram.wait_for(MANAGER.id, "tried to connect")
    assert manager_says in news.text and "@anna.bakes" in news.text
    await _card(world, f"Last login did not work: {card_says}")

    [(status, reason)] = await world.rows("SELECT status, last_reason FROM invitation")
    assert (status, reason) == ("failed", outcome)
    assert await world.rows("SELECT id FROM connection") == []
    [(stored,)] = await world.rows("SELECT outcome FROM login_attempt WHERE used_at IS NOT NULL")
    assert stored == outcome

    # Try again: a fresh Instagram login (the path is kept); after another account, Instagram
    # asks who logs in.
    again = await world.answer(ANNA, "Try again")
    assert "Step 2 of 2" in again.text and "Log in with Instagram" in again.text
    authorize = _query(await world.dialog_url(ANNA))
    assert (authorize.get("force_reauth") == "true") == (outcome == "instagram_other_account")
    page = await world.instagram_login(ANNA, ANNA_IG)
    assert "Connected" in page.text
    await world.telegram.wait_for(ANNA.id, "through Instagram Login")


@pytest.mark.parametrize("trouble", ["down", "rate-limited"])
async def test_instagram_trouble_asks_to_wait_and_try_again(ig_world: World, trouble: str) -> None:
    world = ig_world
    await _to_instagram_login(world)
    if trouble == "down":
        world.instagram.set_outage(True)
    else:
        world.instagram.fail_next(
            "/oauth/access_token",
            code=4,
            message="Application request limit reached",
            http_status=429,
        )
    page = await world.instagram_login(ANNA, ANNA_IG)
    assert "Not connected yet" in page.text
    told = await world.telegram.wait_for(ANNA.id, "Not connected yet")
    if trouble == "down":
        assert "Instagram did not answer right now" in told.text
        assert "wait a few minutes, then tap Try again" in told.text
        outcome, manager_says = "instagram_unavailable", "Instagram was unavailable"
    else:
        assert "Instagram is limiting requests right now" in told.text
        assert "then tap Try again" in told.text
        outcome, manager_says = "instagram_rate_limited", "Instagram was limiting requests"
    news = await world.telegram.wait_for(MANAGER.id, "tried to connect")
    assert manager_says in news.text
    [(reason,)] = await world.rows("SELECT last_reason FROM invitation")
    assert reason == outcome

    world.instagram.set_outage(False)
    await world.answer(ANNA, "Try again")
    page = await world.instagram_login(ANNA, ANNA_IG)
    assert "Connected" in page.text


async def test_a_replayed_callback_changes_nothing(ig_world: World) -> None:
    world = ig_world
    await _to_instagram_login(world)
    callback = await _window(world, ANNA, ANNA_IG)
    page = await world.browser.get(callback)
    await world.settle()
    assert "Connected" in page.text
    await world.telegram.wait_for(ANNA.id, "Connected!")
    await world.telegram.wait_for(MANAGER.id, "through Instagram Login", edited_ok=False)
    await _card(world, "Connected: Instagram @anna.bakes")
    before = (
        await world.rows("SELECT * FROM connection"),
        await world.rows("SELECT id, outcome FROM login_attempt"),
        len(world.telegram.messages(ANNA.id)),
        len(world.telegram.messages(MANAGER.id)),
    )

    replay = await world.browser.get(callback)
    await world.settle()
    assert replay.status_code == 409 and "already been used" in replay.text
    after = (
        await world.rows("SELECT * FROM connection"),
        await world.rows("SELECT id, outcome FROM login_attempt"),
        len(world.telegram.messages(ANNA.id)),
        len(world.telegram.messages(MANAGER.id)),
    )
    assert after == before


async def test_a_used_code_under_a_fresh_state_is_a_login_to_retry(ig_world: World) -> None:
    """Instagram refuses a code the second time: the verdict asks for a fresh login."""
    world = ig_world
    await _to_instagram_login(world)
    first = await _window(world, ANNA, IgPerson("anna_old"))
    await world.browser.get(first)
    await world.settle()
    await world.telegram.wait_for(ANNA.id, "You logged in to Instagram as @anna_old")
    await world.answer(ANNA, "Try again")
    second = _query(await _window(world, ANNA, ANNA_IG))
    used_code = _query(first)["code"]
    url = f"{world.settings.public_url}/oauth/instagram?" + urlencode(
        {"state": second["state"], "code": used_code}
    )
    page = await world.browser.get(url)
    await world.settle()
    assert "Not connected yet" in page.text
    told = await world.telegram.wait_for(ANNA.id, "already used")
    assert "Instagram's one-time login code had expired or was already used" in told.text
    assert "Try again" in told.text
    [(reason,)] = await world.rows("SELECT last_reason FROM invitation")
    assert reason == "login_expired"
    assert await world.rows("SELECT id FROM connection") == []


async def test_a_code_with_instagrams_suffix_still_connects(ig_world: World) -> None:
    """ "#_" after the code is not part of it (Instagram appends it; a URL taken apart by hand
    keeps it)."""
    world = ig_world
    await _to_instagram_login(world)
    callback = _query(await _window(world, ANNA, ANNA_IG))
    url = f"{world.settings.public_url}/oauth/instagram?" + urlencode(
        {"state": callback["state"], "code": callback["code"] + "#_"}
    )
    assert "%23_" in url
    page = await world.browser.get(url)
    await world.settle()
    assert page.status_code == 200 and "Connected" in page.text
    await world.telegram.wait_for(ANNA.id, "through Instagram Login")


async def test_a_state_at_the_other_ways_callback_is_refused(ig_world: World) -> None:
    """A Facebook login's state at /oauth/instagram (and an Instagram one at /oauth/callback) is
    refused with a page, and stays usable where it belongs."""
    world = ig_world
    await _to_facebook_login(world, ANNA, "@anna.bakes")
    fb_state = _query(world.login_url(ANNA))["state"]
    dialog = await world.dialog_url(ANNA)  # the browser opened the button: cookie bound
    assert "/dialog/oauth" in dialog
    wrong = await world.browser.get(
        f"{world.settings.public_url}/oauth/instagram?"
        + urlencode({"state": fb_state, "code": "some-code"})
    )
    await world.settle()
    assert wrong.status_code == 400
    assert "does not belong to this login window" in wrong.text and fb_state not in wrong.text
    assert await world.rows("SELECT id FROM login_attempt WHERE used_at IS NOT NULL") == []
    assert world.instagram.issued_tokens() == []
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert "Connected" in page.text


async def test_an_instagram_state_at_facebooks_callback_is_refused(ig_world: World) -> None:
    world = ig_world
    await _to_instagram_login(world)
    callback = _query(await _window(world, ANNA, ANNA_IG))
    wrong = await world.browser.get(
        f"{world.settings.public_url}/oauth/callback?" + urlencode(callback)
    )
    await world.settle()
    assert wrong.status_code == 400 and "does not belong to this login window" in wrong.text
    assert await world.rows("SELECT id FROM login_attempt WHERE used_at IS NOT NULL") == []
    # The code was not exchanged: the real callback still connects with it.
    page = await world.browser.get(
        f"{world.settings.public_url}/oauth/instagram?" + urlencode(callback)
    )
    await world.settle()
    assert "Connected" in page.text


async def test_a_login_finished_in_another_browser_is_confirmed_first(ig_world: World) -> None:
    world = ig_world
    await _to_instagram_login(world)
    callback = await _window(world, ANNA, ANNA_IG)
    async with httpx.AsyncClient(timeout=30) as other:
        ask = await other.get(callback)
        assert ask.status_code == 200 and "@anna.bakes" in ask.text and "Continue" in ask.text
        assert await world.rows("SELECT id FROM connection") == []
        token = ask.text.split('name="t" value="', 1)[1].split('"', 1)[0]
        done = await other.post(
            f"{world.settings.public_url}/oauth/confirm",
            content=urlencode({"t": token}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    await world.settle()
    assert done.status_code == 200 and "Connected" in done.text
    [(path,)] = await world.rows("SELECT path FROM connection")
    assert path == "instagram"


async def test_the_instagram_path_in_german(ig_world: World) -> None:
    world = ig_world
    login = await _to_instagram_login(world, BEN, "@ben.cooks")
    assert "Schritt 2 von 2" in login.text and "Mit Instagram anmelden" in login.text
    assert "deine Instagram-Insights lesen" in login.text
    await world.instagram_login(BEN, IgPerson("ben.cooks", AccountType.PERSONAL))
    told = await world.telegram.wait_for(BEN.id, "Noch nicht verbunden")
    assert "@ben.cooks ist ein persönliches Instagram-Konto" in told.text
    assert "Zu professionellem Konto wechseln" in told.text


@pytest.mark.parametrize("brand_paths", ["both", "facebook"])
async def test_a_facebook_login_without_a_page_offers_instagram_where_open(
    ig_world: World, brand_paths: str
) -> None:
    world = ig_world
    await _to_facebook_login(world, ANNA, "@anna.bakes")
    await _execute(world, f"UPDATE brand SET login_paths = '{brand_paths}'")
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(pages=set()))
    told = await world.telegram.wait_for(ANNA.id, "did not share any Facebook Page")
    labels = [b["text"] for row in told.buttons for b in row]
    if brand_paths == "both":
        assert "connect @anna.bakes with Instagram Login instead" in told.text
        assert labels == ["🔁 Try again", "📸 Connect with Instagram instead"]
    else:  # the Page is this brand's rule: Instagram is never offered
        assert "Instagram Login" not in told.text
        assert labels == ["🔁 Try again"]


async def test_a_facebook_failure_offers_no_instagram_where_it_is_not_set_up(
    world: World,
) -> None:
    await _to_facebook_login(world, ANNA, "@anna.bakes")
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(pages=set()))
    told = await world.telegram.wait_for(ANNA.id, "did not share any Facebook Page")
    assert [b["text"] for row in told.buttons for b in row] == ["🔁 Try again"]


async def test_an_instagram_connection_is_never_asked_to_renew(ig_world: World) -> None:
    """Its token is refreshed by the health job; a Renew press (an old button, a forged one)
    hands out no Facebook login for it."""
    world = ig_world
    await _to_instagram_login(world)
    await world.instagram_login(ANNA, ANNA_IG)
    await world.telegram.wait_for(ANNA.id, "through Instagram Login")
    [(invitation_id,)] = await world.rows("SELECT id FROM invitation")
    refused = await world.bot.connect.renewal(
        Texts("en"), int(str(invitation_id)), telegram_user_id=ANNA.id
    )
    assert refused is RenewalRefused.NOT_DUE
    assert await world.rows("SELECT id FROM login_attempt WHERE renewal") == []


async def test_show_tells_the_instagram_logins_in_words(ig_world: World) -> None:
    world = ig_world
    await _to_instagram_login(world)
    await world.instagram_login(ANNA, IgPerson("anna.bakes", AccountType.PERSONAL))
    await world.telegram.wait_for(ANNA.id, "personal Instagram account")
    await world.answer(ANNA, "Try again")
    await world.instagram_login(ANNA, IgPerson("anna_old"))
    await world.telegram.wait_for(ANNA.id, "You logged in to Instagram as @anna_old")
    await world.answer(ANNA, "Try again")
    await world.instagram_login(ANNA, ANNA_IG)
    await world.telegram.wait_for(ANNA.id, "through Instagram Login")

    [shown] = await world.say(MANAGER, "/show @anna.bakes")
    assert "@anna.bakes got a new Instagram login link" in shown.text
    assert "✅ connected: Instagram @anna.bakes (12,345 followers) through Instagram Login" in (
        shown.text
    )
    # No empty Page name for a connection without one ("not linked to a Facebook Page" is fine).
    assert "the Page" not in shown.text.split("Timeline", 1)[1].split("Connected on", 1)[0]
    assert "@anna.bakes is a personal Instagram account, not a professional" in shown.text
    assert "they logged in to Instagram as @anna_old, not as @anna.bakes" in shown.text
    for raw in ("instagram_not_professional", "instagram_other_account", "ig_verdict", "{"):
        assert raw not in shown.text
