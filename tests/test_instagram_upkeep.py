"""Keeping Instagram Login connections alive (issue 13), end to end through the stand-ins on
SQLite and PostgreSQL: the health round refreshes such a connection's token well before its 60
days end (no renewal is ever asked), reads /me on Instagram's host instead of Facebook's
debug_token, marks a token Instagram refuses broken (or disconnected) and tells each side once,
and changes nothing while Instagram is down.

Until the influencer's chat offers the Instagram path, the connection is made in the test: a
real long-lived token from the stand-in (authorize window, code exchange, long-lived exchange,
through the bot's own `InstagramClient`), kept in a connection row as the callback keeps one.
Time moves as in tests/test_upkeep.py: the stand-in's clock is moved forward, and the bot's view
of it (the token's stored expiry) with it."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from bot.instagram_login import InstagramClient
from bot.models import (
    Brand,
    Connection,
    Invitation,
    InviteStatus,
    OutboxMessage,
    OutboxStatus,
    utcnow,
)
from bot.store.events import EventKind, new_event
from sandbox.instagram import AccountType, IgConsent, IgPerson
from sandbox.instagram.state import TokenKind
from tests.world import ANNA, MANAGER, World

IG_ANNA = IgPerson("anna.bakes", name="Anna Bakes", followers_count=12345, media_count=310)
DAY = timedelta(days=1)


def instagram_client(world: World) -> InstagramClient:
    base = world.instagram.base_url
    return InstagramClient(
        app_id=world.instagram.app_id,
        app_secret=world.instagram.app_secret,
        scopes=world.settings.instagram_scopes,
        authorize_url=base,
        token_url=base,
        graph_url=base,
    )


async def instagram_token(world: World, person: IgPerson = IG_ANNA) -> tuple[str, int]:
    """A long-lived token of `person` and its lifetime in seconds, had as the callback has it."""
    client = instagram_client(world)
    redirect_uri = world.settings.instagram_redirect_uri
    try:
        url = client.authorize_url(state="test-state", redirect_uri=redirect_uri)
        query = dict(parse_qsl(urlsplit(url).query))
        location = world.instagram.complete_authorize(query, person, IgConsent())
        code = dict(parse_qsl(urlsplit(location).query))["code"]
        short = await client.exchange_code(code=code, redirect_uri=redirect_uri)
        long = await client.long_lived(short.access_token)
    finally:
        await client.aclose()
    assert long.expires_in is not None
    return long.access_token, long.expires_in


async def connect_on_instagram(world: World, *, webhook: bool = False) -> int:
    """@anna.bakes invited, her link opened, and connected through Instagram Login: returns the
    invitation's id. `webhook`: the brand has a webhook (its deliveries are only looked at)."""
    link_token = await world.invite("@anna.bakes")
    world.telegram.send_text(ANNA, f"/start {link_token}")
    await world.settle()
    value, lifetime = await instagram_token(world)
    if webhook:
        await _update(world, sa.update(Brand).values(webhook_url="http://127.0.0.1:9/hook"))
    async with world.db.transaction() as s:
        invite = (
            await s.exec(select(Invitation).where(col(Invitation.handle) == "anna.bakes"))
        ).one()
        assert invite.id is not None
        invite.status = InviteStatus.CONNECTED
        invite.telegram_user_id = ANNA.id
        invite.path = "instagram"
        s.add(invite)
        s.add(
            Connection(
                invitation_id=invite.id,
                facebook_user_id="",
                page_id="",
                page_name="",
                instagram_id=IG_ANNA.user_id,
                instagram_username="anna.bakes",
                followers_count=IG_ANNA.followers_count,
                permissions=",".join(world.settings.instagram_scopes),
                token_encrypted=world.bot.vault.seal(value),
                token_expires_at=utcnow() + timedelta(seconds=lifetime),
                path="instagram",
            )
        )
        s.add(new_event(invite.id, EventKind.VERDICT, InviteStatus.CONNECTED, "connected"))
        return invite.id


async def _update(world: World, statement: sa.Update) -> None:
    async with world.db.transaction() as s:
        await s.exec(statement)


async def _round(world: World) -> tuple[int, int, int]:
    await _update(world, sa.update(Connection).values(next_check_at=None))
    report = await world.bot.upkeep.run_round()
    await world.settle()
    return report.checked, report.changed, report.retried


async def _days_pass(world: World, days: int) -> None:
    """`days` pass for Instagram and for the bot: the stand-in's clock moves on, and the kept
    token's expiry comes that much closer."""
    world.instagram.fast_forward(days=days)
    expires = (await _connection(world)).token_expires_at
    moved = _utc(expires) - timedelta(days=days)
    await _update(world, sa.update(Connection).values(token_expires_at=moved))


async def _digest_now(world: World) -> None:
    await _update(
        world,
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
        .values(due_at=utcnow()),
    )
    world.bot.notices.ring()
    await world.settle()


def _utc(value: object) -> datetime:
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _connection(world: World) -> Connection:
    async with world.db.session() as s:
        return (await s.exec(select(Connection))).one()


async def _kept_token(world: World) -> tuple[str | None, datetime]:
    kept = await _connection(world)
    assert kept.token_encrypted is not None
    return world.bot.vault.open(kept.token_encrypted), _utc(kept.token_expires_at)


async def _health(world: World) -> tuple[object, ...]:
    [row] = await world.rows("SELECT health, health_reason, status FROM connection")
    return row


async def _events(world: World, kind: str) -> list[object]:
    rows = await world.rows(
        f"SELECT detail FROM invitation_event WHERE kind = '{kind}' ORDER BY id"
    )
    return [detail for (detail,) in rows]


def _texts(world: World, chat_id: int, since: int) -> list[str]:
    return [m.text for m in world.telegram.messages(chat_id)[since:]]


def _ig_paths(world: World, since: int) -> list[str]:
    return [path for _, path, _ in world.instagram.requests[since:]]


async def _count_eventually(world: World, chat_id: int, since: int, needle: str) -> int:
    """How many messages since `since` contain `needle`, after one arrived (or 5 seconds)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while not any(needle in t for t in _texts(world, chat_id, since)):
                await world.telegram.wait_for(chat_id, needle, timeout=5)
    await world.settle()
    return sum(needle in t for t in _texts(world, chat_id, since))


async def test_the_token_is_refreshed_after_50_days_and_the_connection_stays_healthy(
    ig_world: World,
) -> None:
    world = ig_world
    await connect_on_instagram(world)
    anna, maria = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))
    first, first_expires = await _kept_token(world)
    graph_calls, ig_calls = len(world.graph.requests), len(world.instagram.requests)

    # A young token: only /me is read, on Instagram's host; Facebook is not asked at all.
    assert await _round(world) == (1, 0, 0)
    assert await _health(world) == ("healthy", None, "active")
    assert not any("refresh" in p for p in _ig_paths(world, ig_calls))
    assert any(p.endswith("/me") for p in _ig_paths(world, ig_calls))
    assert len(world.graph.requests) == graph_calls
    assert await _kept_token(world) == (first, first_expires)

    # 50 days later (10 left): refreshed, the new token kept with its new 60 days.
    await _days_pass(world, 50)
    ig_calls = len(world.instagram.requests)
    assert await _round(world) == (1, 0, 0)
    assert any("refresh_access_token" in p for p in _ig_paths(world, ig_calls))
    assert await _health(world) == ("healthy", None, "active")
    second, second_expires = await _kept_token(world)
    assert second is not None and second != first
    assert second_expires - utcnow() > 59 * DAY
    assert world.instagram.token_info(second).kind is TokenKind.LONG
    client = instagram_client(world)
    try:
        me = await client.me(second)
    finally:
        await client.aclose()
    assert me["username"] == "anna.bakes"

    # The next round has nothing to refresh; past the first token's 60 days all still works.
    await _days_pass(world, 15)
    ig_calls = len(world.instagram.requests)
    assert await _round(world) == (1, 0, 0)
    assert not any("refresh" in p for p in _ig_paths(world, ig_calls))
    assert (await _kept_token(world))[0] == second
    assert await _health(world) == ("healthy", None, "active")

    # Nobody was asked to renew, nobody told anything.
    await _digest_now(world)
    assert await _events(world, "renewal_asked") == []
    assert await _events(world, "health") == []
    assert _texts(world, ANNA.id, anna) == [] and _texts(world, MANAGER.id, maria) == []


@pytest.mark.parametrize(
    ("what", "state", "reason", "influencer_says", "manager_says"),
    [
        (
            "password",
            "broken",
            "password_changed",
            "You changed your Instagram password",
            "they changed their Instagram password",
        ),
        (
            "expired",
            "broken",
            "token_expired",
            "Your Instagram login for Brandly has expired",
            "their Instagram login has expired",
        ),
        (
            "revoked",
            "disconnected",
            "app_removed",
            "You removed Brandly from the apps in your Instagram settings",
            "they removed the app in their Instagram settings",
        ),
    ],
)
async def test_a_token_that_cannot_be_refreshed_is_reported_once_to_each_side(
    ig_world: World,
    what: str,
    state: str,
    reason: str,
    influencer_says: str,
    manager_says: str,
) -> None:
    world = ig_world
    await connect_on_instagram(world)
    anna, maria = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))
    await _days_pass(world, 50)
    if what == "password":
        world.instagram.change_password(IG_ANNA.id)
    elif what == "expired":
        world.instagram.expire_tokens(IG_ANNA.id)
    else:
        world.instagram.revoke(IG_ANNA.id)  # no callback on this path: the refresh finds out

    ig_calls = len(world.instagram.requests)
    assert await _round(world) == (1, 1, 0)
    assert any("refresh_access_token" in p for p in _ig_paths(world, ig_calls))
    assert (await _health(world))[:2] == (state, reason)
    assert await _events(world, "health") == [f"{state}:{reason}"]
    told = await world.telegram.wait_for(ANNA.id, influencer_says)
    assert "stopped working" in told.text and "Facebook" not in told.text
    [[button]] = told.buttons
    assert button["text"] == "🔁 Reconnect"
    await _digest_now(world)
    await world.telegram.wait_for(MANAGER.id, manager_says)

    # The next round tells nobody again (a disconnected connection is not checked at all).
    assert await _round(world) == ((1, 0, 0) if state == "broken" else (0, 0, 0))
    await _digest_now(world)
    assert await _count_eventually(world, ANNA.id, anna, "stopped working") == 1
    assert await _count_eventually(world, MANAGER.id, maria, "stopped working") == 1
    assert not any("Page" in t for t in _texts(world, MANAGER.id, maria))
    assert await _events(world, "renewal_asked") == []
    if state == "disconnected":
        assert (await _connection(world)).token_encrypted is None


@pytest.mark.parametrize("trouble", ["outage", "rate-limit"])
async def test_instagram_trouble_tells_nobody_and_is_checked_again_later(
    ig_world: World, trouble: str
) -> None:
    world = ig_world
    await connect_on_instagram(world)
    anna, maria = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))
    await _days_pass(world, 50)
    first, first_expires = await _kept_token(world)
    if trouble == "outage":
        world.instagram.set_outage(True)
    else:
        world.instagram.fail_next("refresh_access_token", code=4, message="(#4) Too many calls")

    before = utcnow()
    assert await _round(world) == (0, 0, 1)
    assert await _health(world) == ("healthy", None, "active")
    assert await _kept_token(world) == (first, first_expires)
    kept = await _connection(world)
    assert kept.checked_at is None
    assert _utc(kept.next_check_at) - before > timedelta(minutes=14)

    world.instagram.set_outage(False)
    assert await _round(world) == (1, 0, 0)
    assert await _health(world) == ("healthy", None, "active")
    assert (await _kept_token(world))[0] != first
    await _digest_now(world)
    assert _texts(world, ANNA.id, anna) == [] and _texts(world, MANAGER.id, maria) == []
    assert await _events(world, "health") == []


async def _show(world: World) -> str:
    """The manager's /show of @anna.bakes, as text."""
    return (await world.say(MANAGER, "/show @anna.bakes"))[-1].text


async def test_a_permission_taken_back_at_instagram_breaks_the_connection_once(
    ig_world: World,
) -> None:
    world = ig_world
    await connect_on_instagram(world)
    anna, maria = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))

    # A check reads /me and, as cheaply, the insights: /me alone would not notice.
    ig_calls = len(world.instagram.requests)
    assert await _round(world) == (1, 0, 0)
    assert any(p.endswith("/me/insights") for p in _ig_paths(world, ig_calls))
    show = await _show(world)
    assert "Health: ✅ healthy" in show
    assert "renewed automatically, nothing for the influencer to do" in show

    # Instagram down on the insights read alone: nothing changes, checked again later.
    world.instagram.fail_next("insights", code=2, message="Service temporarily unavailable")
    assert await _round(world) == (0, 0, 1)
    assert await _health(world) == ("healthy", None, "active")

    world.instagram.remove_permission(IG_ANNA.id, "instagram_business_manage_insights")
    assert await _round(world) == (1, 1, 0)
    assert await _health(world) == ("broken", "permissions_declined", "active")
    assert await _events(world, "health") == ["broken:permissions_declined"]
    told = await world.telegram.wait_for(ANNA.id, "A permission you gave Brandly has been removed")
    assert "read your Instagram insights" in told.text and "Facebook" not in told.text
    [[button]] = told.buttons
    assert button["text"] == "🔁 Reconnect"
    await _digest_now(world)
    await world.telegram.wait_for(MANAGER.id, "they removed a permission")

    # Told once; /show says broken and no longer that nothing is to do.
    assert await _round(world) == (1, 0, 0)
    await _digest_now(world)
    assert await _count_eventually(world, ANNA.id, anna, "has been removed") == 1
    assert await _count_eventually(world, MANAGER.id, maria, "they removed a permission") == 1
    show = await _show(world)
    assert "Health: ⚠️ broken since" in show, show
    assert "renewed automatically" not in show and "Instagram login valid until" not in show


async def test_an_account_switched_to_personal_is_named_as_such_not_as_a_permission(
    ig_world: World,
) -> None:
    """Instagram refuses a personal account's insights with code 10, as it refuses a removed
    permission: /me's account_type tells the two apart, and the fix is the switch back."""
    world = ig_world
    await connect_on_instagram(world)
    assert await _round(world) == (1, 0, 0)

    world.instagram.set_profile(IG_ANNA.id, account_type=AccountType.PERSONAL)
    ig_calls = len(world.instagram.requests)
    assert await _round(world) == (1, 1, 0)
    # /me says enough: no insights read for a personal account.
    assert not any(p.endswith("/insights") for p in _ig_paths(world, ig_calls))
    assert await _health(world) == ("broken", "instagram_not_professional", "active")
    assert await _events(world, "health") == ["broken:instagram_not_professional"]
    told = await world.telegram.wait_for(ANNA.id, "is a personal account now")
    assert "Switch to professional account" in told.text and "permission" not in told.text
    [[button]] = told.buttons
    assert button["text"] == "🔁 Reconnect"
    await _digest_now(world)
    managers = await world.telegram.wait_for(MANAGER.id, "was switched to a personal account")
    assert "@anna.bakes" in managers.text and "permission" not in managers.text
    show = await _show(world)
    assert "switched to a personal Instagram account" in show, show
    assert "a permission was removed" not in show

    # Switched back: the next check finds it healthy again, and both sides hear so once.
    world.instagram.set_profile(IG_ANNA.id, account_type=AccountType.BUSINESS)
    anna, maria = len(world.telegram.messages(ANNA.id)), len(world.telegram.messages(MANAGER.id))
    assert await _round(world) == (1, 1, 0)
    assert await _health(world) == ("healthy", None, "active")
    healed = await world.telegram.wait_for(ANNA.id, "works again")
    assert healed.text.startswith("✅ Your Instagram connection with Brandly works again.")
    assert healed.buttons == []
    await _digest_now(world)
    await world.telegram.wait_for(MANAGER.id, "The connection of @anna.bakes works again.")
    assert await _round(world) == (1, 0, 0)
    await _digest_now(world)
    assert await _count_eventually(world, ANNA.id, anna, "works again") == 1
    assert await _count_eventually(world, MANAGER.id, maria, "works again") == 1
    show = await _show(world)
    assert "Health: ✅ healthy" in show and "the connection works again" in show, show
