"""The login state's life, end to end on SQLite and PostgreSQL (issue 9, points 2, 20, 21, 22):
one live login button per invitation, old ones refused and taken off, no growth from repeated
messages, a database failure during the callback that loses nothing and strands nobody, and the
login bound to the browser that started it (with a confirmation where it is not)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from bot.models import InviteStatus, utcnow
from bot.store import Database, Outgoing, StateProblem
from sandbox.facebook import Consent, FbPage, FbUser, IgAccount
from sandbox.telegram import SentMessage
from tests.world import (
    ANNA,
    BEN,
    MANAGER,
    BrowserTransport,
    World,
    anna_on_facebook,
    is_login_url,
)

MALLORY = FbUser(
    id="fb-mallory",
    name="Mallory",
    pages=[FbPage(id="p-900", name="Mallory's Secret Page", instagram=IgAccount("ig-9", "m.x"))],
)


async def _one(world: World, sql: str) -> object:
    [(value,)] = await world.rows(sql)
    return value


def _login_messages(world: World, user_id: int) -> list[SentMessage]:
    """Messages that carry a login button now."""
    return [
        m
        for m in world.telegram.messages(user_id)
        if any(is_login_url(str(b.get("url", ""))) for row in m.buttons for b in row)
    ]


def _state(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


async def _callback_url(world: World, start_url: str, person: FbUser, consent: Consent) -> str:
    """The browser opens a login link and finishes Facebook's dialog; returns where Facebook
    sends it back (not opened yet)."""
    world.graph.set_person(person, consent)
    dialog = await world.browser.get(start_url)
    assert dialog.status_code == 302, dialog.text
    return str(dialog.headers["location"])


# --- point 2: an old login link cannot undo a connection -----------------------------------------


async def test_a_replaced_login_link_cannot_undo_the_connection(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    old_url = world.login_url(ANNA)
    # Anna finishes Facebook's dialog in an old tab with Cancel, but the redirect lands later.
    old_callback = await _callback_url(world, old_url, anna_on_facebook(), Consent(cancel=True))

    await world.answer(ANNA, "New login link")
    new_url = world.login_url(ANNA)
    assert _state(new_url) != _state(old_url)
    # Only the newest message carries a login button.
    carriers = _login_messages(world, ANNA.id)
    newest = world.telegram.last_message(ANNA.id)
    assert [m.message_id for m in carriers] == [newest.message_id]
    # The old button, opened again, says what happened.
    again = await world.browser.get(old_url)
    assert again.status_code == 410
    assert "replaced by a newer one" in again.text and "newest login button" in again.text

    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert "Connected" in page.text
    await world.telegram.wait_for(ANNA.id, "Connected!")
    await world.telegram.wait_for(MANAGER.id, "is connected")
    before = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))

    late = await world.browser.get(old_callback)
    assert late.status_code == 200 and "already connected" in late.text
    await asyncio.sleep(1.5)  # a notice would have gathered and gone out by now
    assert await _one(world, "SELECT status FROM invitation") == "connected"
    assert await _one(world, "SELECT COUNT(*) FROM connection") == 1
    after = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))
    assert after == before
    outcomes = await world.rows("SELECT outcome, superseded_at IS NOT NULL FROM login_attempt")
    assert sorted(outcomes, key=str) == sorted([(None, True), ("connected", False)], key=str)


async def test_a_late_result_for_a_connected_invitation_changes_nothing(db: Database) -> None:
    """Two logins in flight at once (the first state was used before the second was issued):
    the second connects, the first's late "cancelled" must not turn it back."""
    from tests.test_store import ALICE, _bind, _invite  # the store tests' helpers

    invite_id, token = await _invite(db)
    await _bind(db, token=token, telegram_user_id=ALICE)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE invitation SET step = 'login'"))
    state = await db.logins.start_login(
        invitation_id=invite_id, telegram_user_id=ALICE, ttl=timedelta(minutes=5), rerequest=False
    )
    assert state is not None
    consumed = await db.logins.consume_state(state)
    assert isinstance(consumed, tuple)
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE invitation SET status = 'connected', step = 'done'"))
    invite = await db.logins.record_verdict(
        attempt_id=consumed[0].id or 0,
        invitation_id=invite_id,
        outcome="cancelled",
        connection=None,
        outgoing=[Outgoing(chat_id=ALICE, text="Not connected")],
    )
    assert invite.status == InviteStatus.CONNECTED
    async with db.engine.connect() as conn:
        status = (await conn.execute(sa.text("SELECT status FROM invitation"))).scalar()
        assert status == "connected"
        assert (await conn.execute(sa.text("SELECT COUNT(*) FROM outbox"))).scalar() == 0
    # A state of a connected invitation is refused with its own answer.
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE invitation SET status = 'login_started', step = 'login'")
        )
    fresh = await db.logins.start_login(
        invitation_id=invite_id, telegram_user_id=ALICE, ttl=timedelta(minutes=5), rerequest=False
    )
    assert fresh is not None
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE invitation SET status = 'connected', step = 'done'"))
    assert await db.logins.consume_state(fresh) is StateProblem.CONNECTED


# --- point 20: no growth from repeated messages ---------------------------------------------------


async def test_repeated_messages_at_the_login_step_reuse_the_live_state(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    first_url = world.login_url(ANNA)
    counts = (
        "SELECT (SELECT COUNT(*) FROM login_attempt), (SELECT COUNT(*) FROM invitation_event),"
        " (SELECT COUNT(*) FROM outbox)"
    )
    before = await world.rows(counts)
    for i in range(4):
        # /start without a token shows the current step (the login) again.
        world.telegram.send_text(ANNA, "/start" if i % 2 else "hello? what now")
    await world.settle(timeout=60)  # replies are paced at Telegram's per-chat rate
    assert await world.rows(counts) == before
    assert world.login_url(ANNA) == first_url  # the same state, shown again
    carriers = _login_messages(world, ANNA.id)
    assert len(carriers) == 1, [m.text[:40] for m in carriers]
    # "New login link" is a new state; the timeline still says "login started" once.
    await world.answer(ANNA, "New login link")
    assert world.login_url(ANNA) != first_url
    started = "SELECT COUNT(*) FROM invitation_event WHERE kind = 'login_started'"
    assert await _one(world, started) == 1
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert "Connected" in page.text


async def test_expired_unused_login_attempts_are_pruned(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.answer(ANNA, "New login link")
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Connected!")
    assert await _one(world, "SELECT COUNT(*) FROM login_attempt") == 2
    job = next(j for j in world.bot.jobs.jobs if j.name == "prune_login_attempts")
    assert await job.run() == 0  # nothing is old enough yet
    async with world.db.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE login_attempt SET expires_at = :t"), {"t": utcnow() - timedelta(days=2)}
        )
    assert await job.run() == 1  # the replaced one; the used one stays with its result
    assert await world.rows("SELECT outcome FROM login_attempt") == [("connected",)]


# --- point 21: the database fails during the callback ---------------------------------------------


async def _break_event_writes(world: World) -> None:
    """From now on the database refuses every new timeline row (as a full disk or a lost
    connection would refuse the write): the login's result cannot be stored."""
    async with world.db.engine.begin() as conn:
        if world.db.url.startswith("sqlite"):
            await conn.execute(
                sa.text(
                    "CREATE TRIGGER broken BEFORE INSERT ON invitation_event "
                    "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
                )
            )
        else:
            await conn.execute(
                sa.text(
                    "CREATE FUNCTION broken() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'could not write to file: No space left on device'; "
                    "END $$ LANGUAGE plpgsql"
                )
            )
            await conn.execute(
                sa.text(
                    "CREATE TRIGGER broken BEFORE INSERT ON invitation_event "
                    "FOR EACH ROW EXECUTE FUNCTION broken()"
                )
            )


async def _repair(world: World) -> None:
    async with world.db.engine.begin() as conn:
        on = "" if world.db.url.startswith("sqlite") else " ON invitation_event"
        await conn.execute(sa.text(f"DROP TRIGGER broken{on}"))


async def test_a_database_failure_during_the_callback_loses_nothing(world: World) -> None:
    token = await world.invite("ben.cooks")
    await world.through_checks(BEN, token)  # Ben speaks German
    ben = FbUser(
        id="fb-ben",
        name="Ben",
        pages=[FbPage(id="p-7", name="Ben kocht", instagram=IgAccount("ig-7", "ben.cooks"))],
    )
    await _break_event_writes(world)
    page = await world.facebook_login(BEN, ben)
    assert page.status_code == 503
    assert "Beim Speichern deiner Anmeldung ist bei mir etwas schiefgegangen" in page.text
    assert "internal error" not in page.text
    # The token Facebook issued could not be kept: it was withdrawn at Facebook.
    assert any(
        m == "DELETE" and p.endswith("/me/permissions") for m, p, _ in world.graph.requests
    )
    assert await _one(world, "SELECT COUNT(*) FROM connection") == 0

    await _repair(world)  # the database is back: the retry reaches Ben on its own
    told = await world.telegram.wait_for(BEN.id, "Bitte versuch es noch einmal", timeout=20)
    assert told.buttons and "callback_data" in told.buttons[0][0]
    assert await _one(world, "SELECT outcome FROM login_attempt") == "interrupted"
    interrupted = "SELECT COUNT(*) FROM invitation_event WHERE kind = 'login_interrupted'"
    assert await _one(world, interrupted) == 1

    # Not stuck: the retry hands out a new login, which works.
    world.telegram.press(BEN, told, told.buttons[0][0]["text"])
    await world.settle()
    page = await world.facebook_login(BEN, ben)
    assert page.status_code == 200 and "Verbunden" in page.text
    assert await _one(world, "SELECT status FROM invitation") == "connected"


async def test_a_login_interrupted_for_long_is_recovered_by_the_periodic_check(
    world: World,
) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await _break_event_writes(world)
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert page.status_code == 503 and "Something went wrong on my side" in page.text
    await world.bot.connect.aclose()  # the process stops before its quick retries succeed
    await _repair(world)
    async with world.db.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE login_attempt SET used_at = :t"),
            {"t": utcnow() - timedelta(minutes=11)},
        )
    job = next(j for j in world.bot.jobs.jobs if j.name == "recover_logins")
    assert await job.run() == 1
    assert await job.run() == 0  # once
    await world.telegram.wait_for(ANNA.id, "Please try again", timeout=10)


# --- point 22: the login belongs to the browser that started it -----------------------------------


def _form_token(page: httpx.Response) -> str:
    found = re.search(r'name="t" value="([A-Za-z0-9_-]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def test_the_login_cookie_is_short_lived_and_same_site(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    async with httpx.AsyncClient() as tab:
        start = await tab.get(world.login_url(ANNA))
    assert start.status_code == 302
    assert "/dialog/oauth?" in start.headers["location"]
    cookie = start.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/oauth" in cookie
    assert "Max-Age=1800" in cookie and "Secure" not in cookie  # PUBLIC_URL is http here
    assert start.headers["Referrer-Policy"] == "no-referrer"


async def test_a_login_finished_in_another_browser_asks_before_anything_happens(
    world: World,
) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    # Anna taps the button in Telegram's browser; Facebook's app hands the login back to the
    # phone's default browser, which has no cookie.
    callback = await _callback_url(world, world.login_url(ANNA), anna_on_facebook(), Consent())
    code, state = parse_qs(urlsplit(callback).query)["code"][0], _state(callback)
    async with httpx.AsyncClient() as other:
        ask = await other.get(callback)
        assert ask.status_code == 200
        assert "Connect the Instagram account @anna.bakes for Brandly?" in ask.text
        assert "<form" in ask.text and "Continue" in ask.text
        assert code not in ask.text and state not in ask.text
        assert "form-action 'self'" in ask.headers["Content-Security-Policy"]
        # Nothing verified, used or reported yet.
        assert not any(p.endswith("/oauth/access_token") for _, p, _ in world.graph.requests)
        assert await _one(world, "SELECT used_at FROM login_attempt") is None
        confirm = _form_token(ask)
        done = await other.post(f"{world.settings.public_url}/oauth/confirm", data={"t": confirm})
        assert done.status_code == 200 and "Connected" in done.text
        again = await other.post(f"{world.settings.public_url}/oauth/confirm", data={"t": confirm})
        assert again.status_code == 409
    await world.telegram.wait_for(ANNA.id, "Connected!")
    assert await _one(world, "SELECT status FROM invitation") == "connected"


async def test_a_forwarded_login_link_does_not_report_someone_elses_accounts(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    link = world.login_url(ANNA)
    world.graph.set_person(anna_on_facebook())
    anna_start = await world.browser.get(link)  # Anna opens her button first
    assert anna_start.status_code == 302
    # She forwards the link; someone else opens it and logs in to Facebook as themselves.
    async with httpx.AsyncClient(transport=BrowserTransport()) as stranger:
        world.graph.set_person(MALLORY, Consent())
        dialog = await stranger.get(link)
        landed = await stranger.get(dialog.headers["location"])
        assert landed.status_code == 200 and "@anna.bakes for Brandly" in landed.text
        assert "Mallory" not in landed.text
    await asyncio.sleep(1.5)
    assert not any("Mallory" in m.text for m in world.telegram.messages(ANNA.id))
    assert not any(p.endswith("/oauth/access_token") for _, p, _ in world.graph.requests)
    # Anna's own login in her own browser goes straight through.
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert page.status_code == 200 and "Connected" in page.text


async def test_a_database_that_is_down_before_the_login_is_used_loses_nothing(
    world: World,
) -> None:
    """PostgreSQL stops taking connections while the redirect arrives: a polite page in the
    person's language, and nothing used (the same redirect works once the database is back).
    (On SQLite there is no server to lose; the tests above break its writes instead.)"""
    if not world.db.url.startswith("postgresql"):
        pytest.skip("SQLite has no server to stop")
    import asyncpg

    from tests.conftest import PG_ADMIN_DB, PG_HOST, PG_PORT, PG_USER

    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    callback = await _callback_url(world, world.login_url(ANNA), anna_on_facebook(), Consent())
    name = world.db.engine.url.database
    admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        page = await world.browser.get(callback, headers={"Accept-Language": "de-DE,de;q=0.9"})
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    assert page.status_code == 503 and "Es wurde nichts verbraucht" in page.text
    assert not any(p.endswith("/oauth/access_token") for _, p, _ in world.graph.requests)
    page = await world.browser.get(callback)
    assert page.status_code == 200 and "Connected" in page.text


async def test_a_used_login_button_comes_off_whatever_the_result(world: World) -> None:
    """A login that came back without connecting used its state: its button would only open
    "already used", so it comes off, and the failure's own "Try again" is the one way on."""
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(cancel=True))
    failure = await world.telegram.wait_for(ANNA.id, "Not connected yet")
    for _ in range(200):  # the edit follows the failure's message
        if not _login_messages(world, ANNA.id):
            break
        await asyncio.sleep(0.05)
    with_buttons = [m for m in world.telegram.messages(ANNA.id) if m.buttons]
    assert [m.message_id for m in with_buttons] == [failure.message_id]
    assert [b["text"] for row in failure.buttons for b in row] == ["🔁 Try again"]
