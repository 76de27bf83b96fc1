"""End to end, through the Telegram and Facebook stand-ins, on SQLite and PostgreSQL: a manager
invites, an influencer walks through the checks and logs in, both learn the result."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from bot.buttons import Action, Press
from bot.models import InviteStatus, Step
from sandbox.facebook import Consent, FbPage, FbUser, IgAccount
from tests.world import ANNA, BEN, MANAGER, World, anna_on_facebook, close_world, make_world

ALL_SCOPES = (
    "instagram_basic,instagram_manage_insights,pages_show_list,pages_read_engagement,"
    "business_management"
)


async def test_full_connection_tells_both_people(world: World) -> None:
    token = await world.invite("@Anna.Bakes")
    assert len(token) <= 64

    welcome = await world.open_link(ANNA, token)
    greeting = world.telegram.messages(ANNA.id)[0].text
    assert "Maria" in greeting and "Brandly" in greeting and "@anna.bakes" in greeting
    assert "3 minutes" in greeting
    assert "Step 1 of 3" in welcome.text and "public" in welcome.text

    linked = await world.answer(ANNA, "Yes")
    assert "Step 2 of 3" in linked.text and "@anna.bakes" in linked.text
    login = await world.answer(ANNA, "Yes")
    assert "Step 3 of 3" in login.text
    assert "read your Instagram insights" in login.text  # permissions in plain words
    assert "select the Page linked to @anna.bakes" in login.text

    # The button opens the bot's /oauth/start, which sends the browser on to Facebook's dialog.
    assert world.login_url(ANNA).startswith(f"{world.settings.public_url}/oauth/start?state=")
    dialog = urlsplit(await world.dialog_url(ANNA))
    params = {k: v[0] for k, v in parse_qs(dialog.query).items()}
    assert dialog.path == "/v25.0/dialog/oauth"
    assert params["client_id"] == world.graph.app_id
    assert params["redirect_uri"] == f"{world.settings.public_url}/oauth/callback"
    assert params["response_type"] == "code"
    assert params["scope"] == ALL_SCOPES
    assert len(params["state"]) >= 40 and "auth_type" not in params

    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert page.status_code == 200
    assert "Connected" in page.text and "@anna.bakes" in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"

    told = await world.telegram.wait_for(ANNA.id, "Connected!")
    assert "@anna.bakes" in told.text and "12,345 followers" in told.text
    assert "Anna Bakes" in told.text
    news = await world.telegram.wait_for(MANAGER.id, "is connected")
    assert "@anna.bakes" in news.text and "Anna Bakes" in news.text

    [(status, step, reason)] = await world.rows("SELECT status, step, last_reason FROM invitation")
    assert (status, step, reason) == ("connected", "done", None)
    [conn] = await world.rows(
        "SELECT facebook_user_id, page_id, page_name, instagram_id, instagram_username, "
        "followers_count, permissions, token_encrypted FROM connection",
    )
    assert conn[:6] == ("fb-anna", "p-100", "Anna Bakes", "ig-100", "anna.bakes", 12345)
    assert set(str(conn[6]).split(",")) >= set(ALL_SCOPES.split(","))
    sealed = str(conn[7])
    assert sealed and all(t not in sealed for t in world.graph.issued_tokens())
    assert world.bot.vault.open(sealed) in world.graph.issued_tokens()
    kinds = [k for (k,) in await world.rows("SELECT kind FROM invitation_event ORDER BY id")]
    assert kinds == [
        "created",
        "opened",
        "check_passed",
        "check_passed",
        "login_started",
        "verdict",
    ]

    # Every Graph call made with a user token carried appsecret_proof (the stand-in enforces it).
    assert world.graph.require_appsecret_proof


def _anna(**page: object) -> FbUser:
    return anna_on_facebook(**page)


def _anna_with_shop_account() -> FbUser:
    person = anna_on_facebook()
    person.pages[0].instagram = IgAccount(id="ig-050", username="anna_shop")
    return person


BRANCHES = [
    pytest.param(
        _anna(),
        Consent(cancel=True),
        "You cancelled the Facebook login",
        "cancelled",
        id="cancelled",
    ),
    pytest.param(
        _anna(), Consent(app_not_live=True), "not your fault", "app_not_live", id="app-not-live"
    ),
    pytest.param(
        _anna(),
        Consent(declined={"instagram_manage_insights"}),
        "read your Instagram insights",
        "permissions_declined",
        id="permission-declined",
    ),
    pytest.param(
        _anna(), Consent(pages=set()), "did not share any Facebook Page", "no_page", id="no-page"
    ),
    pytest.param(
        _anna(is_published=False),
        None,
        "is not published",
        "page_unpublished",
        id="page-unpublished",
    ),
    pytest.param(_anna(tasks=[]), None, "role on the Page", "page_no_role", id="no-role"),
    pytest.param(
        _anna(instagram=None, connected_instagram=IgAccount(id="ig-100", username="anna.bakes")),
        None,
        "only half-linked",
        "ig_half_linked",
        id="half-linked",
    ),
    pytest.param(
        _anna(instagram=IgAccount(id="ig-900", username="anna_old")),
        None,
        "different Instagram account (@anna_old)",
        "ig_other_account",
        id="other-account",
    ),
    pytest.param(
        _anna(instagram=None), None, "could not be found", "ig_not_linked", id="not-linked"
    ),
    pytest.param(
        _anna_with_shop_account(),
        Consent(instagram_accounts={"ig-050"}),
        "was not selected among the Instagram accounts",
        "ig_not_selected",
        id="account-not-selected",
    ),
    pytest.param(
        _anna(),
        Consent(error="server_error"),
        "ended the login with an error",
        "login_error",
        id="login-error",
    ),
    pytest.param(
        _anna(),
        Consent(session_invalidated=True),
        "could not confirm this login",
        "token_invalid",
        id="token-invalid",
    ),
    pytest.param(
        _anna_with_shop_account(),
        Consent(pages={"p-050"}),
        "different Instagram account (@anna_shop)",
        "ig_other_account",
        id="wrong-page-selected",
    ),
]


async def test_a_login_is_verified_with_few_graph_calls(world: World) -> None:
    """The code exchange and the long-lived token, then debug_token, /me/permissions and
    /me/accounts (followed to its second page: the stand-in pages by two). The follower count in
    the messages comes with the Pages (field expansion): the Instagram account is not read again."""
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    before = len(world.graph.requests)
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert "Connected" in page.text
    told = await world.telegram.wait_for(ANNA.id, "Connected!")
    assert "12,345 followers" in told.text
    calls = sorted(
        (method, path.split("/", 2)[-1])
        for method, path, _ in world.graph.requests[before:]
        if "/dialog/" not in path
    )
    assert calls == [
        ("GET", "debug_token"),
        ("GET", "me/accounts"),
        ("GET", "me/accounts"),
        ("GET", "me/permissions"),
        ("GET", "oauth/access_token"),
        ("GET", "oauth/access_token"),
    ]
    accounts = [q for _, path, q in world.graph.requests[before:] if path.endswith("/me/accounts")]
    assert accounts and all("{id,username,followers_count}" in q["fields"] for q in accounts)


async def test_the_result_is_stored_in_one_transaction(world: World) -> None:
    """The verdict, the connection, the event and every message about it: one transaction of
    few statements (the outbox rows aside, one INSERT each)."""
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.settle()
    transactions: dict[str, list[list[str]]] = {}

    def begin(conn: object) -> None:
        transactions.setdefault(_task(), []).append([])

    def statement(conn: object, cursor: object, sql: str, *args: object) -> None:
        transactions.setdefault(_task(), [[]])[-1].append(sql.split(" (")[0].split(" SET ")[0])

    engine = world.db.engine.sync_engine
    sa.event.listen(engine, "begin", begin)
    sa.event.listen(engine, "before_cursor_execute", statement)
    try:
        page = await world.facebook_login(ANNA, anna_on_facebook())
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
        sa.event.remove(engine, "begin", begin)
    assert "Connected" in page.text
    storing = [
        t for tasks in transactions.values() for t in tasks if "INSERT INTO invitation_event" in t
    ]
    assert len(storing) == 1, transactions
    writes = [sql for sql in storing[0] if not sql.startswith("INSERT INTO outbox")]
    assert "INSERT INTO connection" in writes and "UPDATE invitation" in writes
    # Seven, and the platform webhook's one lookup of the brand's URL (bot/store/webhooks.py).
    assert len(writes) <= 8, writes
    # Anna's result, the card's edit, the manager's notice, the login button taken off: one
    # statement on PostgreSQL, one per row on SQLite.
    assert 1 <= storing[0].count("INSERT INTO outbox") <= 4


def _task() -> str:
    task = asyncio.current_task()
    return task.get_name() if task is not None else ""


@pytest.mark.parametrize(("person", "consent", "says", "outcome"), BRANCHES)
async def test_every_failure_is_explained_with_a_retry(
    world: World, person: FbUser, consent: Consent | None, says: str, outcome: str
) -> None:
    token = await world.invite("@anna.bakes")
    await world.through_checks(ANNA, token)
    page = await world.facebook_login(ANNA, person, consent)
    assert page.status_code == 200 and "Not connected yet" in page.text

    told = await world.telegram.wait_for(ANNA.id, "Not connected yet")
    assert says in told.text
    assert told.buttons and "Try again" in told.buttons[0][0]["text"]
    news = await world.telegram.wait_for(MANAGER.id, "tried to connect")
    assert "@anna.bakes" in news.text

    [(status, reason)] = await world.rows("SELECT status, last_reason FROM invitation")
    assert (status, reason) == (InviteStatus.FAILED.value, outcome)
    assert await world.rows("SELECT id FROM connection") == []


async def test_business_portfolio_page_without_business_management(database_url: str) -> None:
    """With business_management not requested, a portfolio-owned Page stays invisible."""
    world = await make_world(
        database_url,
        facebook_scopes=(
            "instagram_basic",
            "instagram_manage_insights",
            "pages_show_list",
            "pages_read_engagement",
        ),
    )
    try:
        token = await world.invite("anna.bakes")
        await world.through_checks(ANNA, token)
        person = anna_on_facebook(business_owned=True)
        person.pages = [person.pages[1]]
        await world.facebook_login(ANNA, person)
        told = await world.telegram.wait_for(ANNA.id, "Not connected yet")
        assert "business portfolio" in told.text
        [(reason,)] = await world.rows("SELECT last_reason FROM invitation")
        assert reason == "no_page_business"
    finally:
        await close_world(world)


async def test_app_not_live_is_reported_as_the_operators_problem(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(app_not_live=True))
    news = await world.telegram.wait_for(MANAGER.id, "tried to connect")
    # A brand manager cannot publish the platform's app: they are told whom to forward it to.
    assert "Brandly's operator" in news.text and "Development mode" in news.text


async def test_declined_permission_retry_rerequests_and_connects(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(
        ANNA, anna_on_facebook(), Consent(declined={"pages_read_engagement", "instagram_basic"})
    )
    told = await world.telegram.wait_for(ANNA.id, "Not connected yet")
    # Named in plain words, in the order they were requested.
    assert told.text.index("see your Instagram profile") < told.text.index("read your Page's")

    retry = await world.answer(ANNA, "Try again")
    assert "Step 3 of 3" in retry.text
    params = parse_qs(urlsplit(await world.dialog_url(ANNA)).query)
    assert params["auth_type"] == ["rerequest"]

    await world.facebook_login(ANNA, anna_on_facebook(), Consent())
    await world.telegram.wait_for(ANNA.id, "Connected!")
    await world.telegram.wait_for(MANAGER.id, "is connected")
    [(status,)] = await world.rows("SELECT status FROM invitation")
    assert status == "connected"
    outcomes = [o for (o,) in await world.rows("SELECT outcome FROM login_attempt ORDER BY id")]
    assert outcomes == ["permissions_declined", "connected"]


@pytest.mark.parametrize(
    ("path", "code", "http_status", "outcome"),
    [
        pytest.param("/me/accounts", 2, 500, "facebook_unavailable", id="graph-5xx"),
        pytest.param("/me/permissions", 4, 400, "facebook_unavailable", id="rate-limited"),
        pytest.param("oauth/access_token", 100, 400, "login_expired", id="code-rejected"),
    ],
)
async def test_facebook_trouble_loses_nothing(
    world: World, path: str, code: int, http_status: int, outcome: str
) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    world.graph.fail_next(path, code=code, message="trouble", http_status=http_status)
    await world.facebook_login(ANNA, anna_on_facebook())
    told = await world.telegram.wait_for(ANNA.id, "Not connected yet")
    assert "Try again" in told.buttons[0][0]["text"]
    [(status, reason)] = await world.rows("SELECT status, last_reason FROM invitation")
    assert (status, reason) == ("failed", outcome)

    await world.answer(ANNA, "Try again")
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Connected!")


async def test_network_failure_at_facebook(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    world.graph.fail_network("/debug_token")
    await world.facebook_login(ANNA, anna_on_facebook())
    told = await world.telegram.wait_for(ANNA.id, "Not connected yet")
    assert "Nothing is lost" in told.text


async def test_forged_state_changes_nothing(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    before = await world.rows("SELECT status, step FROM invitation")
    sent_before = len(world.telegram.requests)
    url = f"{world.settings.public_url}/oauth/callback"
    forged = await world.browser.get(url, params={"code": "AQDforged", "state": "x" * 43})
    assert forged.status_code == 400
    assert "AQDforged" not in forged.text and "x" * 43 not in forged.text
    missing = await world.browser.get(url, params={"code": "abc"})
    assert missing.status_code == 400
    assert await world.rows("SELECT status, step FROM invitation") == before
    assert len(world.telegram.requests) == sent_before
    assert not any(p.endswith("/oauth/access_token") for _, p, _ in world.graph.requests)


async def test_replayed_callback_notifies_once(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    world.graph.set_person(anna_on_facebook())
    dialog = await world.browser.get(world.login_url(ANNA))
    callback = dialog.headers["location"]
    first = await world.browser.get(callback)
    assert first.status_code == 200
    await world.telegram.wait_for(MANAGER.id, "is connected")
    manager_messages = len(world.telegram.messages(MANAGER.id))
    anna_messages = len(world.telegram.messages(ANNA.id))

    replay = await world.browser.get(callback)
    assert replay.status_code == 409 and "already been used" in replay.text
    code = parse_qs(urlsplit(callback).query)["code"][0]
    assert code not in replay.text
    await world.settle()
    assert len(world.telegram.messages(MANAGER.id)) == manager_messages
    assert len(world.telegram.messages(ANNA.id)) == anna_messages
    exchanges = [p for _, p, q in world.graph.requests if q.get("code") == code]
    assert len(exchanges) == 1


async def test_expired_invitation(world: World) -> None:
    token = await world.invite("anna.bakes")
    async with world.db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE invitation SET expires_at = created_at"))
    reply = await world.open_link(ANNA, token)
    assert "expired" in reply.text
    assert await world.rows("SELECT status, telegram_user_id FROM invitation") == [
        ("pending", None)
    ]


async def test_unknown_and_malformed_links(world: World) -> None:
    for payload in ("doesnotexist", "x" * 80, "bad%token"):
        reply = await world.open_link(ANNA, payload)
        assert "not valid" in reply.text
    assert await world.rows("SELECT id FROM invitation") == []


async def test_second_account_cannot_take_the_invitation(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    reply = await world.open_link(BEN, token)
    assert "bereits von einem anderen Telegram-Konto" in reply.text  # Ben speaks German
    assert reply.buttons == []
    assert await world.rows("SELECT telegram_user_id FROM invitation") == [(ANNA.id,)]


async def test_restart_in_the_middle_of_the_checks(world: World) -> None:
    token = await world.invite("anna.bakes")
    first_question = await world.open_link(ANNA, token)
    await world.answer(ANNA, "Yes")

    await world.restart()

    # An old button (step 1, already answered) is only acknowledged: step 2 is in the chat.
    old_yes = Press(Action.YES, await _invite_id(world), Step.PAGE_PUBLIC).pack()
    before = len(world.telegram.messages(ANNA.id))
    world.telegram.press_data(ANNA, first_question.message_id, old_yes)
    await world.settle()
    assert len(world.telegram.messages(ANNA.id)) == before
    current = world.telegram.last_message(ANNA.id)
    assert "Step 2 of 3" in current.text
    assert any("Already answered" in a.get("text", "") for a in world.telegram.callback_answers)

    await world.answer(ANNA, "Yes")
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Connected!")


async def _invite_id(world: World) -> int:
    [(invite_id,)] = await world.rows("SELECT id FROM invitation")
    return int(str(invite_id))


async def test_no_and_how_answers_give_instructions_and_done(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    fix = await world.answer(ANNA, "No")
    assert "Page visibility" in fix.text and "Page published" in fix.text
    step2 = await world.answer(ANNA, "Done")
    assert "Step 2 of 3" in step2.text
    how = await world.answer(ANNA, "How do I check")
    assert "Edit profile" in how.text
    assert [b["text"] for b in how.buttons[0]] == ["✅ Yes", "❌ No"]
    fix2 = await world.answer(ANNA, "No")
    assert "Switch to professional account" in fix2.text and "@anna.bakes" in fix2.text
    login = await world.answer(ANNA, "Done")
    assert "Step 3 of 3" in login.text
    details = [d for (d,) in await world.rows("SELECT detail FROM invitation_event ORDER BY id")]
    assert "page_public:no" in details and "page_linked:how" in details


async def test_non_admin_cannot_invite(world: World) -> None:
    world.telegram.send_text(ANNA, "/invite @someone")
    reply = await world.telegram.wait_for(ANNA.id, "only the brand's managers")
    assert str(ANNA.id) in reply.text
    assert await world.rows("SELECT id FROM invitation") == []


async def test_invalid_handles_are_refused(world: World) -> None:
    world.telegram.send_text(MANAGER, "/invite @no..dots @ok_handle")
    await world.telegram.wait_for(MANAGER.id, "is not a valid Instagram username")
    await world.telegram.wait_for(MANAGER.id, "Invitation for @ok_handle")
    assert await world.rows("SELECT handle FROM invitation") == [("ok_handle",)]


async def test_german_influencer_gets_german(world: World) -> None:
    token = await world.invite("ben.cooks")
    await world.open_link(BEN, token)
    greeting = world.telegram.messages(BEN.id)[0].text
    assert "lädt dich über Brandly ein" in greeting
    login = await world.through_checks(BEN, token)
    assert "Schritt 3 von 3" in login.text
    ben = FbUser(
        id="fb-ben",
        name="Ben",
        pages=[FbPage(id="p-9", name="Ben Kocht", instagram=IgAccount("ig-9", "ben.cooks", 2500))],
    )
    await world.facebook_login(BEN, ben)
    told = await world.telegram.wait_for(BEN.id, "Verbunden!")
    assert "2.500 Follower" in told.text


async def test_language_can_be_switched(world: World) -> None:
    world.telegram.send_text(ANNA, "/language")
    await world.settle()
    await world.answer(ANNA, "Deutsch")
    await world.telegram.wait_for(ANNA.id, "ich spreche ab jetzt Deutsch")
    world.telegram.send_text(ANNA, "/help")
    await world.telegram.wait_for(ANNA.id, "Was ich mache")


async def test_help_cancel_free_text_and_unknown_commands(world: World) -> None:
    world.telegram.send_text(ANNA, "hello?")
    await world.telegram.wait_for(ANNA.id, "open the invitation link")
    world.telegram.send_text(ANNA, "/frobnicate")
    await world.telegram.wait_for(ANNA.id, "don't know that command")
    world.telegram.send_text(ANNA, "/cancel")
    await world.telegram.wait_for(ANNA.id, "nothing to cancel")

    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    world.telegram.send_text(ANNA, "/cancel")
    paused = await world.telegram.wait_for(ANNA.id, "Paused")
    assert "Continue" in paused.buttons[0][0]["text"]
    resumed = await world.answer(ANNA, "Continue")
    assert "Step 1 of 3" in resumed.text
    world.telegram.send_text(ANNA, "what now?")
    await world.settle()
    await world.telegram.wait_for(ANNA.id, "use the buttons of step 1 of 3")
    world.telegram.send_text(ANNA, "/start")
    await world.telegram.wait_for(ANNA.id, "Welcome back")
    world.telegram.send_text(MANAGER, "/help")
    await world.telegram.wait_for(MANAGER.id, "Commands for managers")


async def test_forged_button_changes_nothing(world: World) -> None:
    token = await world.invite("anna.bakes")
    question = await world.open_link(ANNA, token)
    data = Press(Action.YES, await _invite_id(world), Step.PAGE_PUBLIC).pack()
    # Ben presses Anna's button data; Anna sends garbage and an unknown invitation id.
    world.telegram.send_text(BEN, "/start")
    await world.settle()
    world.telegram.press_data(BEN, question.message_id, data)
    world.telegram.press_data(ANNA, question.message_id, "c1:y:notanumber:x")
    world.telegram.press_data(ANNA, question.message_id, "c1:y:999999:page_public")
    world.telegram.press_data(ANNA, question.message_id, "\u00ff" * 10)
    await world.settle()
    assert await world.rows("SELECT step FROM invitation") == [("page_public",)]
    alerts = [a.get("text", "") for a in world.telegram.callback_answers]
    assert alerts.count("This button is no longer valid.") == 3  # Anna's three
    assert alerts.count("Dieser Button ist nicht mehr gültig.") == 1  # Ben's, in German


async def test_health_and_page_headers(world: World) -> None:
    health = await world.browser.get(f"{world.settings.public_url}/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok", "database": True}
    page = await world.browser.get(f"{world.settings.public_url}/oauth/callback")
    assert page.status_code == 400
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
