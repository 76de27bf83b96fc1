"""End to end, through the Telegram and Facebook stand-ins, on SQLite and PostgreSQL: while a
connected influencer's connection needs them (renewal due, broken, or the app removed at
Facebook), whatever they send (/start, their invitation link again, typed text, /language)
shows the renewal request or the breakage notice again, with its button, in their language; a
healthy connection keeps the plain "connected" answer, and a Renew press on it hands out no
login but says until when access runs (issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bot.i18n import Texts
from bot.models import Connection
from bot.screens import long_date
from sandbox.telegram import SentMessage
from tests.world import ANNA, MANAGER, World, anna_on_facebook


async def _set_connection(world: World, **values: object) -> None:
    """What the periodic check (or Facebook's deauthorize callback) would have stored."""
    async with world.db.engine.begin() as conn:
        await conn.execute(sa.update(Connection).values(**values))


async def _connect_anna(world: World) -> tuple[int, str]:
    """Anna connected through her Page Anna Bakes: her invitation's id and link token."""
    token = await world.invite("@anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Connected!")
    await world.telegram.wait_for(MANAGER.id, "is connected")
    [(invitation_id,)] = await world.rows("SELECT id FROM invitation")
    return int(str(invitation_id)), token


def _renew_data(message: SentMessage) -> list[str]:
    return [str(b.get("callback_data")) for row in message.buttons for b in row]


async def test_a_due_renewal_is_asked_again_whatever_the_influencer_sends(world: World) -> None:
    invitation_id, token = await _connect_anna(world)
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    await _set_connection(
        world, health="renewal_due", renewal_stage=14, data_access_expires_at=ends
    )
    date = long_date(Texts("en"), ends)

    for sent in ("/start", f"/start {token}", "hello?"):
        [request] = await world.say(ANNA, sent)
        assert "Please renew your Instagram connection" in request.text, sent
        assert f"ends on {date}" in request.text, sent
        assert "nothing else to do" not in request.text.lower()
        assert _renew_data(request) == [f"rn:{invitation_id}"]
    # Typing on: the request is right above, not repeated per message.
    assert await world.say(ANNA, "hello??") == []

    # /language: the request again, in the language chosen.
    await world.say(ANNA, "/language")
    world.telegram.press(ANNA, world.telegram.last_message(ANNA.id), "Deutsch")
    await world.settle()
    request = world.telegram.last_message(ANNA.id)
    de = Texts("de")
    assert request.button(de.plain("renewal.button"))["callback_data"] == f"rn:{invitation_id}"
    assert long_date(de, ends) in request.text and "Please renew" not in request.text


async def test_a_broken_connection_shows_its_notice_again(world: World) -> None:
    invitation_id, _ = await _connect_anna(world)
    await _set_connection(world, health="broken", health_reason="password_changed")
    for sent in ("/start", "is everything fine?"):
        [notice] = await world.say(ANNA, sent)
        assert "has stopped working" in notice.text, sent
        assert "You changed your Facebook password" in notice.text
        assert "Tap Reconnect" in notice.text  # the fix
        assert notice.button("Reconnect")["callback_data"] == f"rn:{invitation_id}"

    # The login it offers is a reconnect, and so is the result.
    world.telegram.press(ANNA, notice, "Reconnect")
    await world.settle()
    offered = world.telegram.last_message(ANNA.id)
    assert "Reconnect your Instagram account" in offered.text and "90 days" not in offered.text
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert "Connected again!" in page.text and "Renewed" not in page.text
    told = await world.telegram.wait_for(ANNA.id, "Connected again!")
    assert [b["text"] for row in told.buttons for b in row] == ["👀 See what the brand sees"]
    # The manager's timeline says so too.
    [show] = await world.say(MANAGER, "/show @anna.bakes")
    assert "@anna.bakes reconnected: same Page, same Instagram account, working again" in show.text
    assert world.bot.metrics.registry.get_sample_value("connectbot_renewals_completed_total") == 1
    [(ends,)] = await world.rows("SELECT data_access_expires_at FROM connection")
    assert long_date(Texts("en"), _as_datetime(ends)) in told.text

    # Healthy again: today's plain answers.
    [answer] = await world.say(ANNA, "/start")
    assert "is already connected" in answer.text and answer.buttons == []
    [answer] = await world.say(ANNA, "thanks")
    assert "Your account is connected" in answer.text


async def test_an_app_removed_at_facebook_shows_the_reconnect(world: World) -> None:
    invitation_id, _ = await _connect_anna(world)
    # As Facebook's deauthorize callback leaves it: ended there, the invitation connected.
    await _set_connection(
        world,
        status="disconnected",
        health="disconnected",
        health_reason="app_removed",
        token_encrypted=None,
        page_token_encrypted=None,
    )
    [notice] = await world.say(ANNA, "/start")
    assert "You removed the app" in notice.text
    assert notice.button("Reconnect")["callback_data"] == f"rn:{invitation_id}"
    world.telegram.press(ANNA, notice, "Reconnect")
    await world.settle()
    assert "Reconnect your Instagram account" in world.telegram.last_message(ANNA.id).text


async def test_renew_on_a_healthy_connection_says_until_when(world: World) -> None:
    invitation_id, _ = await _connect_anna(world)
    logins = await world.rows("SELECT COUNT(*) FROM login_attempt")
    # An old Renew button (e.g. of a request answered since).
    world.telegram.send_text(ANNA, "/help")
    await world.settle()
    before = len(world.telegram.messages(ANNA.id))
    world.telegram.press_data(
        ANNA, world.telegram.last_message(ANNA.id).message_id, f"rn:{invitation_id}"
    )
    await world.settle()
    [answer] = world.telegram.messages(ANNA.id)[before:]
    # The Page token is kept: what ends is data access.
    [(ends,)] = await world.rows("SELECT data_access_expires_at FROM connection")
    assert "Your connection works" in answer.text
    assert f"until {long_date(Texts('en'), _as_datetime(ends))}" in answer.text
    assert answer.buttons == []
    assert await world.rows("SELECT COUNT(*) FROM login_attempt") == logins


def _as_datetime(value: object) -> datetime:
    """A timestamp as the database returned it (SQLite: text)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def test_a_notice_shown_again_names_what_the_check_found(world: World) -> None:
    """The removed permission and the new username are kept with the health event, so the
    notice shown again (the influencer's /start, the manager's Remind) names them as the first
    one did, not an empty list or "now called @"."""
    await world.bot.jobs.stop()  # only this test runs health rounds
    invitation_id, _ = await _connect_anna(world)

    world.graph.remove_permission("fb-anna", "instagram_manage_insights")
    await _set_connection(world, next_check_at=None)
    assert (await world.bot.upkeep.run_round()).changed == 1
    first = await world.telegram.wait_for(ANNA.id, "has been removed")
    [again] = await world.say(ANNA, "/start")
    assert "has been removed" in again.text
    assert again.text == first.text  # the same permission, named in the same words

    # Reconnected with everything granted, then the account is renamed.
    world.graph.set_person(anna_on_facebook())
    world.telegram.press(ANNA, again, "Reconnect")
    await world.settle()
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Connected again!")
    world.graph.change_username("fb-anna", "p-100", "anna.bakes.daily")
    await _set_connection(world, next_check_at=None)
    assert (await world.bot.upkeep.run_round()).changed == 1
    await world.telegram.wait_for(ANNA.id, "@anna.bakes.daily")
    [again] = await world.say(ANNA, "/start")
    assert "@anna.bakes.daily" in again.text
    # A rename is the brand's to settle: /health offers no Remind for it.
    [listed] = await world.say(MANAGER, "/health")
    assert "@anna.bakes" in listed.text and listed.buttons == []
    # An older Remind button (from before the rename) still sends the notice as it is now.
    world.telegram.press_data(MANAGER, listed.message_id, f"hr:{invitation_id}")
    reminded = await world.telegram.wait_for(ANNA.id, "A reminder from")
    assert "@anna.bakes.daily" in reminded.text
