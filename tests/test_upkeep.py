"""Connections kept alive (issue 11), end to end through the stand-ins on SQLite and PostgreSQL:
an influencer connects with the real login flow, then Facebook does something to the connection
(the Graph stand-in's lifecycle controls) and the next health round (`Upkeep.run_round`, called
by the test; the periodic job is stopped so it cannot take a round first) finds it and tells
each side once. Time is moved by the test: a connection's next check is made due, data access is
moved to end soon, and the managers' digest is made due, instead of anyone waiting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import col

from bot.buttons import RemindHealth, Renew
from bot.crypto import new_invitation_token, secret_hash
from bot.models import (
    Brand,
    Connection,
    Invitation,
    InviteStatus,
    Manager,
    OutboxMessage,
    OutboxStatus,
    utcnow,
)
from bot.store import Database
from bot.upkeep import CLAIM_BATCH, DIGEST_HOUR_UTC, GraphPace, Upkeep
from sandbox.facebook import Consent, FbPage, FbUser, GraphStandin, IgAccount
from sandbox.facebook.state import LONG_LIVED_SECONDS
from sandbox.telegram import TgUser
from tests.world import ANNA, MANAGER, World, anna_on_facebook, close_world, make_world

FB_ANNA = "fb-anna"
PAGE = "p-100"
DAY = 86400.0


@pytest.fixture
async def kept(database_url: str) -> AsyncIterator[World]:
    """The whole product; the periodic jobs stopped, so only the test runs health rounds."""
    world = await make_world(database_url)
    await world.bot.jobs.stop()
    try:
        yield world
    finally:
        await close_world(world)


async def _connect(world: World) -> None:
    token = await world.invite("@anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Connected!")
    await world.telegram.wait_for(MANAGER.id, "is connected")


async def _update(world: World, statement: sa.Update) -> None:
    async with world.db.transaction() as s:
        await s.exec(statement)


async def _make_due(world: World) -> None:
    """Every connection's next check is now (as if its interval had passed)."""
    await _update(world, sa.update(Connection).values(next_check_at=None))


async def _round(world: World) -> tuple[int, int, int]:
    await _make_due(world)
    report = await world.bot.upkeep.run_round()
    await world.settle()
    return report.checked, report.changed, report.retried


async def _digest_now(world: World) -> None:
    """The managers' digest time has come: their waiting notices are due now."""
    await _update(
        world,
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
        .values(due_at=utcnow()),
    )
    world.bot.notices.ring()


async def _health(world: World) -> tuple[object, ...]:
    [row] = await world.rows("SELECT health, health_reason, status FROM connection")
    return row


async def _events(world: World, kind: str) -> list[object]:
    rows = await world.rows(
        f"SELECT detail FROM invitation_event WHERE kind = '{kind}' ORDER BY id"
    )
    return [detail for (detail,) in rows]


def _sample(world: World, name: str, **labels: str) -> float | None:
    return world.bot.metrics.registry.get_sample_value(name, labels)


def _texts(world: World, chat_id: int, since: int) -> list[str]:
    return [m.text for m in world.telegram.messages(chat_id)[since:]]


async def _count_eventually(
    world: World, chat_id: int, since: int, needle: str, expected: int
) -> int:
    """How many messages since `since` contain `needle`, once `expected` of them arrived (or
    after 5 seconds, when they did not)."""

    def count() -> int:
        return sum(needle in text for text in _texts(world, chat_id, since))

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while count() < expected:
                await world.telegram.wait_for(chat_id, needle, timeout=5)
                await asyncio.sleep(0.02)
    return count()


async def test_a_healthy_connection_is_checked_and_nobody_is_told(kept: World) -> None:
    world = kept
    await _connect(world)
    anna, maria = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))
    graph_calls = len(world.graph.requests)

    assert await _round(world) == (1, 0, 0)

    assert await _health(world) == ("healthy", None, "active")
    [(checked_at, next_check_at)] = await world.rows(
        "SELECT checked_at, next_check_at FROM connection"
    )
    assert checked_at is not None and next_check_at is not None
    # debug_token, and the Page (with its Instagram account) through Graph: nothing else.
    paths = [path for _, path, _ in world.graph.requests[graph_calls:]]
    assert any(p.endswith("/debug_token") for p in paths)
    assert 2 <= len(paths) <= 3
    assert _texts(world, ANNA.id, anna) == [] and _texts(world, MANAGER.id, maria) == []
    assert await _events(world, "health") == []
    assert _sample(world, "connectbot_health_checks_total", result="ok") == 1
    # The leader runs rounds every 5 minutes at most (the test stopped that job).
    [job] = [job for job in world.bot.jobs.jobs if job.name == "health_checks"]
    assert job.every == timedelta(minutes=5)
    # Not due again until its interval has (nearly) passed.
    assert (await world.bot.upkeep.run_round()).checked == 0


def _remove_permission(graph: GraphStandin) -> None:
    graph.remove_permission(FB_ANNA, "instagram_manage_insights")


BREAKAGES = [
    pytest.param(
        lambda g: g.change_password(FB_ANNA),
        ("broken", "password_changed"),
        "You changed your Facebook password",
        "they changed their Facebook password",
        id="password-changed-460",
    ),
    pytest.param(
        # Every token of hers, the Page token the check reads too (the user token alone: see
        # test_the_user_token_alone_matters_only_without_a_page_token).
        lambda g: g.expire_tokens(FB_ANNA),
        ("broken", "token_expired"),
        "Your Facebook login for Brandly has expired",
        "their Facebook login has expired",
        id="token-expired-463",
    ),
    pytest.param(
        lambda g: g.remove_app(FB_ANNA),
        ("disconnected", "app_removed"),
        "You removed the app of Brandly",
        "they removed the app on Facebook",
        id="app-removed-458",
    ),
    pytest.param(
        _remove_permission,
        ("broken", "permissions_declined"),
        "read your Instagram insights",
        "read their Instagram insights",
        id="permission-removed",
    ),
    pytest.param(
        lambda g: g.remove_page_role(FB_ANNA, PAGE),
        ("broken", "page_role_lost"),
        "You no longer have a role on your Page Anna Bakes",
        "they no longer have a role on the Page Anna Bakes",
        id="page-role-lost",
    ),
    pytest.param(
        lambda g: g.unlink_instagram(FB_ANNA, PAGE),
        ("broken", "instagram_unlinked"),
        "@anna.bakes is no longer linked to your Page Anna Bakes",
        "@anna.bakes is no longer linked to the Page Anna Bakes",
        id="instagram-unlinked",
    ),
    pytest.param(
        lambda g: g.unpublish_page(FB_ANNA, PAGE),
        ("broken", "page_unpublished"),
        "Your Page Anna Bakes is no longer published",
        "their Page Anna Bakes is no longer published",
        id="page-unpublished",
    ),
    pytest.param(
        lambda g: g.change_username(FB_ANNA, PAGE, "anna.bakes.daily"),
        ("broken", "username_changed"),
        "is now called @anna.bakes.daily",
        "@anna.bakes is now called @anna.bakes.daily",
        id="username-changed",
    ),
    pytest.param(
        lambda g: g.set_data_access_expires_at(FB_ANNA, g.now() - 60),
        ("broken", "access_expired"),
        "it asks you to confirm it every 90 days",
        "Facebook paused access to their data after 90 days",
        id="access-expired",
    ),
]


@pytest.mark.parametrize(("cause", "stored", "to_influencer", "to_manager"), BREAKAGES)
async def test_each_breakage_is_found_by_the_next_round_and_told_once_to_each_side(
    kept: World,
    cause: Callable[[GraphStandin], None],
    stored: tuple[str, str],
    to_influencer: str,
    to_manager: str,
) -> None:
    world = kept
    await _connect(world)
    assert await _round(world) == (1, 0, 0)
    anna, maria = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))

    cause(world.graph)
    assert await _round(world) == (1, 1, 0)

    state, reason = stored
    assert (await _health(world))[:2] == stored
    if state == "disconnected":
        [(status, token, ended)] = await world.rows(
            "SELECT status, token_encrypted, ended_at FROM connection"
        )
        assert status == "disconnected" and token is None and ended is not None
    assert await _events(world, "health") == [f"{state}:{reason}"]
    assert _sample(world, "connectbot_breakages_total", reason=reason) == 1
    scraped = (await world.bot.metrics.scrape(world.db.gauges, world.db.health)).decode()
    assert f'connectbot_connection_health{{state="{state}"}} 1.0' in scraped

    told = await world.telegram.wait_for(ANNA.id, "stopped working")
    assert to_influencer in told.text
    labels = [b["text"] for row in told.buttons for b in row]
    if reason == "username_changed":
        assert labels == []  # nothing to reconnect: a rename is told, not repaired by a login
    else:
        assert labels == ["🔁 Reconnect"]
        [data] = [b["callback_data"] for row in told.buttons for b in row]
        assert Renew.parse(data) is not None
    assert _texts(world, ANNA.id, anna) == [told.text]

    # The managers hear it at the day's digest, not at once.
    [(due_at,)] = await world.rows(
        f"SELECT due_at FROM outbox WHERE chat_id = {MANAGER.id} AND kind = 'notice' "
        "AND status = 'pending'"
    )
    assert _as_utc(due_at).hour == DIGEST_HOUR_UTC
    assert _texts(world, MANAGER.id, maria) == []
    await _digest_now(world)
    news = await world.telegram.wait_for(MANAGER.id, "stopped working")
    assert "The connection of @anna.bakes has stopped working" in news.text
    assert to_manager in news.text

    # The same reason in the next rounds tells nobody again.
    for _ in range(2):
        assert (await _round(world))[1:] == (0, 0)
    await _digest_now(world)
    await world.settle()
    assert _texts(world, ANNA.id, anna) == [told.text]
    assert [t for t in _texts(world, MANAGER.id, maria) if "stopped working" in t] == [news.text]
    assert await _events(world, "health") == [f"{state}:{reason}"]
    assert _sample(world, "connectbot_breakages_total", reason=reason) == 1


async def _kept_tokens(world: World) -> tuple[str, str | None]:
    """The connection's user token and Page token, as the check opens them."""
    [(user, page)] = await world.rows(
        "SELECT token_encrypted, page_token_encrypted FROM connection"
    )
    vault = world.bot.vault
    user_token = vault.open(str(user))
    assert user_token is not None
    return user_token, vault.open(str(page)) if page else None


USER_TOKEN_ONLY = [
    pytest.param(
        lambda g, token: g.expire_token(token),
        ("broken", "token_expired"),
        "Your Facebook login for Brandly has expired",
        id="user-token-expired-463",
    ),
    pytest.param(
        lambda g, token: g.log_out(FB_ANNA),  # Page tokens survive a logout
        ("broken", "token_invalid"),
        "Facebook no longer accepts your login",
        id="logged-out-467",
    ),
    pytest.param(
        lambda g, token: g.set_token_expires_at(token, g.now() + 10 * DAY),
        ("renewal_due", None),
        "Please renew",
        id="user-token-ends-in-10-days",
    ),
]


@pytest.mark.parametrize(("cause", "without_page_token", "told"), USER_TOKEN_ONLY)
async def test_the_user_token_alone_matters_only_without_a_page_token(
    kept: World,
    cause: Callable[[GraphStandin, str], None],
    without_page_token: tuple[str, str | None],
    told: str,
) -> None:
    """The brand's reads use the Page token (it does not expire; data access's 90 days bound
    it): what befalls only the user token (its 60 days, a logout) is no breakage and asks for
    no renewal, as long as a Page token is kept. Older connections without one keep being
    judged by the user token."""
    world = kept
    await _connect(world)
    user_token, page_token = await _kept_tokens(world)
    assert page_token is not None
    anna, maria = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))
    [(data_access_at_login,)] = await world.rows("SELECT data_access_expires_at FROM connection")

    cause(world.graph, user_token)
    calls = len(world.graph.requests)
    assert await _round(world) == (1, 0, 0)

    assert await _health(world) == ("healthy", None, "active")
    # debug_token was asked about the Page token, and its expiry ("never") is what is kept.
    [debugged] = [q for _, path, q in world.graph.requests[calls:] if path.endswith("/debug_token")]
    assert debugged["input_token"] == page_token
    [(token_ends, data_ends)] = await world.rows(
        "SELECT token_expires_at, data_access_expires_at FROM connection"
    )
    assert token_ends is None
    assert _as_utc(data_ends) == _as_utc(data_access_at_login)
    await _digest_now(world)
    await world.settle()
    assert _texts(world, ANNA.id, anna) == [] and _texts(world, MANAGER.id, maria) == []

    # An older connection, kept without a Page token: the user token is what is checked.
    await _update(world, sa.update(Connection).values(page_token_encrypted=None))
    assert await _round(world) == (1, 1, 0)
    assert (await _health(world))[:2] == without_page_token
    notice = await world.telegram.wait_for(ANNA.id, told)
    if without_page_token[0] == "broken":
        assert "stopped working" in notice.text


async def test_a_rename_is_told_alike_to_both_sides_and_renaming_back_heals(kept: World) -> None:
    world = kept
    await _connect(world)
    anna, maria = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))

    world.graph.change_username(FB_ANNA, PAGE, "anna.bakes.daily")
    assert await _round(world) == (1, 1, 0)
    told = await world.telegram.wait_for(ANNA.id, "is now called")
    assert "will send you a new invitation for @anna.bakes.daily" in told.text
    assert "change the name back" in told.text and "works again by itself" in told.text
    await _digest_now(world)
    news = await world.telegram.wait_for(MANAGER.id, "is now called")
    assert "invite @anna.bakes.daily anew" in news.text
    assert "they have been told a new invitation will come" in news.text
    assert "works again by itself" in news.text

    # Renamed back: the next check finds the invited account again, and it works.
    world.graph.change_username(FB_ANNA, PAGE, "anna.bakes")
    assert await _round(world) == (1, 1, 0)
    assert await _health(world) == ("healthy", None, "active")
    assert await _events(world, "health") == ["broken:username_changed", "healthy"]
    await _digest_now(world)
    await world.settle()
    assert _texts(world, ANNA.id, anna) == [told.text]
    assert _texts(world, MANAGER.id, maria) == [news.text]


async def test_renewal_is_asked_14_and_3_days_before_once_each_then_access_expires(
    kept: World,
) -> None:
    world = kept
    await _connect(world)
    anna, maria = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))
    graph = world.graph

    graph.set_data_access_expires_at(FB_ANNA, graph.now() + 13 * DAY)
    assert await _round(world) == (1, 1, 0)
    asked = await world.telegram.wait_for(ANNA.id, "Please renew")
    assert "every 90 days" in asked.text and "a minute" in asked.text
    ends = datetime.fromtimestamp(graph.now() + 13 * DAY, tz=UTC)
    assert f"{ends.day} " in asked.text and str(ends.year) in asked.text
    [[button]] = asked.buttons
    assert button["text"] == "🔐 Renew access"
    assert Renew.parse(button["callback_data"]) is not None
    assert (await _health(world))[:2] == ("renewal_due", None)
    assert await _events(world, "renewal_asked") == ["14"]

    # Still within 14 days: not asked again.
    graph.set_data_access_expires_at(FB_ANNA, graph.now() + 10 * DAY)
    assert await _round(world) == (1, 0, 0)
    # Within 3 days: asked once more, and only once.
    graph.set_data_access_expires_at(FB_ANNA, graph.now() + 2 * DAY)
    assert await _round(world) == (1, 0, 0)
    assert await _round(world) == (1, 0, 0)
    assert await _events(world, "renewal_asked") == ["14", "3"]
    assert await _count_eventually(world, ANNA.id, anna, "renew your Instagram connection", 2) == 2
    # The second request says it is the last one.
    assert await _count_eventually(world, ANNA.id, anna, "Last reminder", 1) == 1
    assert _sample(world, "connectbot_renewals_sent_total") == 2
    [(stage,)] = await world.rows("SELECT renewal_stage FROM connection")
    assert stage == 3
    # The manager is not bothered while renewal can still happen in time.
    await _digest_now(world)
    await world.settle()
    assert _texts(world, MANAGER.id, maria) == []

    # Ignored until access ends: broken, told once to each side.
    graph.set_data_access_expires_at(FB_ANNA, graph.now() - 60)
    assert await _round(world) == (1, 1, 0)
    assert await _round(world) == (1, 0, 0)
    assert (await _health(world))[:2] == ("broken", "access_expired")
    await world.telegram.wait_for(ANNA.id, "every 90 days, and that time has run out")
    await _digest_now(world)
    await world.telegram.wait_for(MANAGER.id, "Facebook paused access to their data")
    assert len([t for t in _texts(world, ANNA.id, anna) if "stopped working" in t]) == 1
    assert len([t for t in _texts(world, MANAGER.id, maria) if "stopped working" in t]) == 1
    assert await _events(world, "health") == ["renewal_due", "broken:access_expired"]


@pytest.mark.parametrize("trouble", ["outage", "rate-limit"])
async def test_graph_trouble_marks_nothing_broken_and_is_checked_again_later(
    kept: World, trouble: str
) -> None:
    world = kept
    await _connect(world)
    anna, maria = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))
    [(checked_before,)] = await world.rows("SELECT checked_at FROM connection")
    before = utcnow()
    if trouble == "outage":
        world.graph.set_outage(True)
    else:
        world.graph.set_rate_limits(app_per_hour=0)

    assert await _round(world) == (0, 0, 1)

    assert await _health(world) == ("healthy", None, "active")
    assert _sample(world, "connectbot_health_checks_total", result="retry") == 1
    [(checked_at, next_check_at)] = await world.rows(
        "SELECT checked_at, next_check_at FROM connection"
    )
    assert checked_at == checked_before  # nothing was judged
    wait = _as_utc(next_check_at) - before
    if trouble == "outage":
        assert timedelta(minutes=14) < wait < timedelta(minutes=16)
    else:
        assert timedelta(minutes=59) < wait < timedelta(minutes=61)
    # Not due yet: the next round leaves it alone.
    assert (await world.bot.upkeep.run_round()).checked == 0

    world.graph.set_outage(False)
    world.graph.set_rate_limits()
    assert await _round(world) == (1, 0, 0)
    assert await _health(world) == ("healthy", None, "active")
    await _digest_now(world)
    await world.settle()
    assert _texts(world, ANNA.id, anna) == [] and _texts(world, MANAGER.id, maria) == []
    assert await _events(world, "health") == []


async def _remind_earlier(world: World, by: timedelta) -> None:
    """The last reminder, and the breakage it was about, happened `by` earlier (a double tap
    is only seconds after it)."""
    [(reminded_at,)] = await world.rows("SELECT reminded_at FROM invitation")
    [(changed_at,)] = await world.rows("SELECT health_changed_at FROM connection")
    await _update(world, sa.update(Invitation).values(reminded_at=_as_utc(reminded_at) - by))
    await _update(world, sa.update(Connection).values(health_changed_at=_as_utc(changed_at) - by))


async def test_a_manager_reminds_the_influencer_at_most_once_an_hour(kept: World) -> None:
    world = kept
    await _connect(world)
    [(invitation_id,)] = await world.rows("SELECT id FROM invitation")
    data = RemindHealth(int(str(invitation_id))).pack()

    async def remind() -> str:
        before = len(world.telegram.messages(MANAGER.id))
        card = world.telegram.messages(MANAGER.id)[-1].message_id
        world.telegram.press_data(MANAGER, card, data)
        await world.settle()
        [answer] = _texts(world, MANAGER.id, before)
        return answer

    assert await remind() == (
        "✅ The connection of @anna.bakes works: there is nothing to remind them of."
    )
    world.graph.unpublish_page(FB_ANNA, PAGE)
    assert await _round(world) == (1, 1, 0)
    await world.telegram.wait_for(ANNA.id, "no longer published")
    anna = len(world.telegram.messages(ANNA.id))

    async def toast(who: TgUser) -> object:
        """Press Remind as `who` on their newest message; the toast it got."""
        world.telegram.press_data(who, world.telegram.messages(who.id)[-1].message_id, data)
        await world.settle()
        return world.telegram.calls("answerCallbackQuery")[-1].get("text")

    # Only a manager of the brand: anyone else's press is refused, and nothing is sent.
    assert await toast(ANNA) == "This button is no longer valid."
    assert len(world.telegram.messages(ANNA.id)) == anna

    assert await remind() == "📨 Reminder sent to @anna.bakes."
    again = await world.telegram.wait_for(ANNA.id, "A reminder from Maria")
    assert "no longer published" in again.text
    assert [b["text"] for row in again.buttons for b in row] == ["🔁 Reconnect"]
    # A double tap: a toast, no second answer in the chat, no second reminder.
    before = len(world.telegram.messages(MANAGER.id))
    assert await toast(MANAGER) == "📨 The reminder to @anna.bakes is on its way."
    assert len(world.telegram.messages(MANAGER.id)) == before
    # A minute later: refused until the hour is over.
    await _remind_earlier(world, timedelta(minutes=1))
    [(reminded_at,)] = await world.rows("SELECT reminded_at FROM invitation")
    again_at = (_as_utc(reminded_at) + timedelta(hours=1)).strftime("%H:%M")
    assert await remind() == (
        f"⏳ @anna.bakes was reminded less than an hour ago. Try again after {again_at} UTC."
    )
    assert len(world.telegram.messages(ANNA.id)) == anna + 1

    # The problem changed since the reminder: that is news, and Remind works at once.
    world.graph.remove_page_role(FB_ANNA, PAGE)
    assert await _round(world) == (1, 1, 0)
    await world.telegram.wait_for(ANNA.id, "no longer have a role")
    anna = len(world.telegram.messages(ANNA.id))
    assert await remind() == "📨 Reminder sent to @anna.bakes."
    assert await _count_eventually(world, ANNA.id, anna, "A reminder from Maria", 1) == 1
    [again_text] = _texts(world, ANNA.id, anna)
    assert "no longer have a role" in again_text
    await _remind_earlier(world, timedelta(minutes=1))
    [(reminded_at,)] = await world.rows("SELECT reminded_at FROM invitation")
    again_at = (_as_utc(reminded_at) + timedelta(hours=1)).strftime("%H:%M")
    assert await remind() == (
        f"⏳ @anna.bakes was reminded less than an hour ago. Try again after {again_at} UTC."
    )
    assert len(world.telegram.messages(ANNA.id)) == anna + 1
    assert len(await _events(world, "reminded")) == 2


async def test_two_replicas_check_each_connection_once_per_round(database_url: str) -> None:
    """A second replica's health service on the same database (its own engine, as another
    process has) runs its round at the same time: each connection is checked by one of them."""
    world = await make_world(database_url, health_graph_calls_per_second=500.0)
    try:
        await world.bot.jobs.stop()
        await _two_rounds_at_once(world)
    finally:
        await close_world(world)


async def _two_rounds_at_once(world: World) -> None:
    await _seed(world, 120)  # several claims of CLAIM_BATCH each
    other_db = Database(world.settings.database_url)
    other = Upkeep(
        settings=world.settings,
        db=other_db,
        graph=world.bot.graph,
        vault=world.bot.vault,
        notices=world.bot.notices,
    )
    calls = len(world.graph.requests)
    try:
        first, second = await asyncio.gather(world.bot.upkeep.run_round(), other.run_round())
    finally:
        await other_db.dispose()
    assert first.checked + second.checked == 120
    assert first.retried == second.retried == 0
    debugs = [p for _, p, _ in world.graph.requests[calls:] if p.endswith("/debug_token")]
    assert len(debugs) == 120
    [(checked,)] = await world.rows("SELECT count(*) FROM connection WHERE checked_at IS NOT NULL")
    assert checked == 120


async def test_an_outage_ends_the_round_after_one_claim(database_url: str) -> None:
    """Graph down: the claimed connections wait OUTAGE_RETRY, the others are not even tried
    (the next round takes them), and nobody's health changes."""
    world = await make_world(database_url, health_graph_calls_per_second=500.0)
    try:
        await world.bot.jobs.stop()
        await _seed(world, 2 * CLAIM_BATCH)
        world.graph.set_outage(True)
        report = await world.bot.upkeep.run_round()
        assert (report.checked, report.changed, report.retried) == (0, 0, CLAIM_BATCH)
        [(waiting, untouched)] = await world.rows(
            "SELECT count(next_check_at), count(*) - count(next_check_at) FROM connection"
        )
        assert (waiting, untouched) == (CLAIM_BATCH, CLAIM_BATCH)
        world.graph.set_outage(False)
        report = await world.bot.upkeep.run_round()
        assert (report.checked, report.retried) == (CLAIM_BATCH, 0)
        assert await world.rows("SELECT DISTINCT health FROM connection") == [("healthy",)]
    finally:
        await close_world(world)


async def test_the_pace_spreads_calls_evenly() -> None:
    pace = GraphPace(50.0)
    started = time.monotonic()
    await asyncio.gather(*(pace.take() for _ in range(11)))
    assert time.monotonic() - started >= 0.19  # 10 intervals of 20 ms after the first call


# --- many connections ----------------------------------------------------------------------------


async def _seed(world: World, count: int) -> None:
    """`count` connected influencers, inserted directly (the login flow is tested above): each a
    Facebook user of the stand-in with a Page and its Instagram account, the permissions granted
    in a dialog, and a long-lived user token and its Page token issued by the stand-in, sealed
    as the login keeps them."""
    graph, vault = world.graph, world.bot.vault
    scopes = ",".join(world.settings.facebook_scopes)
    now = utcnow()
    async with world.db.transaction() as s:
        brand = Brand(name="Brandly")
        s.add(brand)
        await s.flush()
        assert brand.id is not None
        if await s.get(Manager, MANAGER.id) is None:
            s.add(Manager(telegram_id=MANAGER.id, brand_id=brand.id, name="Maria"))
        invites = []
        for i in range(count):
            person = FbUser(
                id=f"fb-{i}",
                name=f"Person {i}",
                pages=[
                    FbPage(
                        id=f"p-{i}",
                        name=f"Page {i}",
                        instagram=IgAccount(id=f"ig-{i}", username=f"creator{i}"),
                    )
                ],
            )
            graph.complete_dialog(
                {
                    "client_id": graph.app_id,
                    "redirect_uri": f"{world.settings.public_url}/oauth/callback",
                    "state": "seed",
                    "scope": scopes,
                },
                person,
                Consent(),
            )
            issued = graph._issue_token(person.id, LONG_LIVED_SECONDS)
            page_token = graph._page_token(issued, person.pages[0])
            invite = Invitation(
                token_hash=secret_hash(new_invitation_token()),
                handle=f"creator{i}",
                created_by=MANAGER.id,
                inviter_name="Maria",
                status=InviteStatus.CONNECTED,
                expires_at=now + timedelta(days=14),
                brand_id=brand.id,
            )
            invites.append((invite, person, issued.value, page_token))
            s.add(invite)
        await s.flush()
        for invite, person, user_token, page_token in invites:
            assert invite.id is not None
            s.add(
                Connection(
                    invitation_id=invite.id,
                    facebook_user_id=person.id,
                    page_id=person.pages[0].id,
                    page_name=person.pages[0].name,
                    instagram_id=f"ig-{person.id[3:]}",
                    instagram_username=invite.handle,
                    permissions=scopes,
                    token_encrypted=vault.seal(user_token),
                    page_token_encrypted=vault.seal(page_token),
                )
            )


async def test_2000_connections_are_checked_within_the_graph_rate_limits(database_url: str) -> None:
    """2,000 connections in one round at HEALTH_GRAPH_CALLS_PER_SECOND = 1000 (the highest
    setting; a real deployment uses a few per second). The stand-in enforces Graph's limits per
    sliding hour: for the app as a whole exactly the round's budget (3 calls per connection:
    debug_token, the Page with its Page token, the Instagram account through it), and per
    person 2, per Page token 2, per Instagram account 1 call: one refused call would leave a
    connection unchecked. The pace is checked too: never more than 1000 calls in a second."""
    count, pace = 2000, 1000.0
    world = await make_world(database_url, health_graph_calls_per_second=pace)
    try:
        await world.bot.jobs.stop()
        await _seed(world, count)
        world.graph.set_rate_limits(
            app_per_hour=3 * count, user_per_hour=2, page_per_hour=2, instagram_per_hour=1
        )
        calls = len(world.graph.requests)
        started = time.monotonic()
        report = await world.bot.upkeep.run_round()
        elapsed = time.monotonic() - started

        assert (report.checked, report.changed, report.retried) == (count, 0, 0)
        assert world.graph.limits.refused == 0
        made = len(world.graph.requests) - calls
        assert made == 3 * count
        assert elapsed >= (made - 1) / pace
        arrivals = sorted(arrived for arrived, _ in world.graph.request_times[calls:])
        busiest = max(
            sum(1 for t in arrivals[i : i + int(pace) + 1] if t - arrivals[i] < 1.0)
            for i in range(0, len(arrivals), 250)
        )
        assert busiest <= pace + 1
        [(healthy,)] = await world.rows(
            "SELECT count(*) FROM connection WHERE health = 'healthy' AND checked_at IS NOT NULL"
        )
        assert healthy == count
        # Spread over the interval: the next checks are not all due at once.
        [(first, last)] = await world.rows(
            "SELECT min(next_check_at), max(next_check_at) FROM connection"
        )
        assert _as_utc(last) - _as_utc(first) > timedelta(hours=1)
    finally:
        await close_world(world)


def _as_utc(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def test_a_breakage_mended_before_the_digest_is_not_reported(kept: World) -> None:
    """The Page was unpublished and published again before 09:00: the managers' digest line
    about it is dropped (it would report a breakage that is over); the timeline keeps both."""
    world = kept
    await _connect(world)
    maria = len(world.telegram.messages(MANAGER.id))
    world.graph.unpublish_page(FB_ANNA, PAGE)
    assert await _round(world) == (1, 1, 0)
    await world.telegram.wait_for(ANNA.id, "no longer published")
    assert await world.rows(
        f"SELECT count(*) FROM outbox WHERE chat_id = {MANAGER.id} AND status = 'pending'"
        " AND kind = 'notice'"
    ) == [(1,)]
    world.graph.unpublish_page(FB_ANNA, PAGE, published=True)
    assert await _round(world) == (1, 1, 0)
    assert (await _health(world))[:2] == ("healthy", None)
    await _digest_now(world)
    await world.settle()
    assert not [t for t in _texts(world, MANAGER.id, maria) if "stopped working" in t]
    assert await world.rows(
        f"SELECT status FROM outbox WHERE chat_id = {MANAGER.id} AND kind = 'notice'"
        " ORDER BY id DESC LIMIT 1"
    ) == [("dropped",)]
    # Nor that it works again; Anna, who was told at once, hears that.
    assert not [t for t in _texts(world, MANAGER.id, maria) if "works again" in t]
    await world.telegram.wait_for(ANNA.id, "works again")
    assert await _events(world, "health") == ["broken:page_unpublished", "healthy"]
