"""Reconnecting a broken Instagram Login connection (issue 13), end to end through the stand-ins
on SQLite and PostgreSQL: the health round finds the password changed and tells the influencer
with a Reconnect button; Reconnect hands out Instagram's login window again (a renewal login on
the Instagram path), and its callback at /oauth/instagram mends the kept connection (new token,
healthy again, both sides told) when the same account logs in, or names the other account and
replaces nothing. A working Instagram Login connection has nothing to renew, and /profile words a
refused read as Instagram's."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import col, select

from bot.buttons import RemindHealth, Renew
from bot.models import Connection, OutboxMessage, OutboxStatus, utcnow
from sandbox.instagram import IgPerson
from sandbox.telegram import SentMessage, TgUser
from tests.world import ANNA, BEN, MANAGER, World

IG_ANNA = IgPerson("anna.bakes", name="Anna Bakes", followers_count=12345, media_count=310)
IG_OTHER = IgPerson("anna.private", name="Anna Private", followers_count=12, media_count=3)


async def _connect(world: World, user: TgUser = ANNA) -> int:
    return await world.connect_with_instagram(user, IG_ANNA)


async def _update(world: World, statement: sa.Update) -> None:
    async with world.db.transaction() as s:
        await s.exec(statement)


async def _round(world: World) -> None:
    await _update(world, sa.update(Connection).values(next_check_at=None))
    await world.bot.upkeep.run_round()
    await world.settle()


async def _digest_now(world: World) -> None:
    """Notices held for the managers' digest go out now."""
    await _update(
        world,
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
        .values(due_at=utcnow()),
    )
    world.bot.notices.ring()
    await world.settle()


async def _break(world: World, user: TgUser = ANNA) -> SentMessage:
    """Anna changes her Instagram password; the next health round finds out and tells her."""
    world.instagram.change_password(IG_ANNA.id)
    await _round(world)
    health = (await _connection(world)).health, (await _connection(world)).health_reason
    assert health == ("broken", "password_changed")
    needle = "Instagram-Passwort" if user.language_code == "de" else "Instagram password"
    return await world.telegram.wait_for(user.id, needle)


async def _connection(world: World) -> Connection:
    async with world.db.session() as s:
        return (await s.exec(select(Connection))).one()


async def _kept_token(world: World) -> tuple[str | None, datetime]:
    kept = await _connection(world)
    assert kept.token_encrypted is not None and kept.token_expires_at is not None
    expires = kept.token_expires_at
    return world.bot.vault.open(kept.token_encrypted), (
        expires if expires.tzinfo is not None else expires.replace(tzinfo=UTC)
    )


async def _press(world: World, user: TgUser, message: SentMessage, label: str) -> SentMessage:
    """`user` presses the button under `message`; returns the bot's newest message to them."""
    before = len(world.telegram.messages(user.id))
    world.telegram.press(user, message, label)
    await world.settle()
    after = world.telegram.messages(user.id)[before:]
    assert after, "the bot answered nothing"
    return after[-1]


async def _events(world: World, kind: str) -> list[object]:
    rows = await world.rows(
        f"SELECT detail FROM invitation_event WHERE kind = '{kind}' ORDER BY id"
    )
    return [detail for (detail,) in rows]


def _texts(world: World, chat_id: int, since: int) -> list[str]:
    return [m.text for m in world.telegram.messages(chat_id)[since:]]


async def test_reconnect_mends_a_broken_instagram_connection(ig_world: World) -> None:
    world = ig_world
    invitation_id = await _connect(world)
    old_token, old_expiry = await _kept_token(world)
    notice = await _break(world)
    await _digest_now(world)
    await world.telegram.wait_for(MANAGER.id, "they changed their Instagram password")
    reconnect = notice.button("Reconnect")
    assert reconnect["callback_data"] == Renew(invitation_id).pack()

    offered = await _press(world, ANNA, notice, "Reconnect")
    assert "Reconnect your Instagram account" in offered.text and "@anna.bakes" in offered.text
    assert "log in with Instagram" in offered.text and "log in with Facebook" not in offered.text
    labels = [b["text"] for row in offered.buttons for b in row]
    assert labels == ["🔐 Log in with Instagram", "🔄 New login link"]
    [(path, renewal)] = await world.rows(
        "SELECT path, renewal FROM login_attempt ORDER BY id DESC LIMIT 1"
    )
    assert path == "instagram" and renewal in (True, 1)
    # The button leads to Instagram's window (not Facebook's dialog), back to /oauth/instagram.
    window = await world.dialog_url(ANNA)
    assert window.startswith(f"{world.instagram.base_url}/oauth/authorize?")
    assert "force_reauth" not in window

    anna = len(world.telegram.messages(ANNA.id))
    maria = len(world.telegram.messages(MANAGER.id))
    page = await world.instagram_login(ANNA, IG_ANNA)
    assert page.status_code == 200 and "Connected again!" in page.text, page.text
    assert "@anna.bakes" in page.text
    told = await world.telegram.wait_for(ANNA.id, "Connected again!")
    assert "through Instagram Login" in told.text and "Page" not in told.text
    assert told.button("what the brand sees")
    await _digest_now(world)
    await world.telegram.wait_for(MANAGER.id, "has reconnected")
    assert sum("has reconnected" in t for t in _texts(world, MANAGER.id, maria)) == 1
    assert sum("Connected again!" in t for t in _texts(world, ANNA.id, anna)) == 1

    # The kept connection: a new token and expiry, healthy again, still Instagram's.
    new_token, new_expiry = await _kept_token(world)
    assert new_token and new_token != old_token and new_expiry >= old_expiry
    kept = await _connection(world)
    assert (kept.health, kept.health_reason, kept.status) == ("healthy", None, "active")
    assert (kept.path, kept.page_id, kept.instagram_username) == ("instagram", "", "anna.bakes")
    assert await _events(world, "renewed") == ["reconnected"]
    [(outcome,)] = await world.rows(
        "SELECT outcome FROM login_attempt WHERE renewal ORDER BY id DESC LIMIT 1"
    )
    assert outcome == "connected"

    # The new token works: the next round keeps it healthy and tells nobody.
    anna = len(world.telegram.messages(ANNA.id))
    await _round(world)
    assert (await _connection(world)).health == "healthy"
    assert not any("stopped working" in t for t in _texts(world, ANNA.id, anna))


async def test_reconnect_with_another_account_replaces_nothing(ig_world: World) -> None:
    world = ig_world
    await _connect(world)
    notice = await _break(world)
    broken_token, broken_expiry = await _kept_token(world)
    await _press(world, ANNA, notice, "Reconnect")

    page = await world.instagram_login(ANNA, IG_OTHER)
    assert page.status_code == 200 and "Not renewed" in page.text
    told = await world.telegram.wait_for(ANNA.id, "Reconnecting did not work")
    assert "@anna.private" in told.text and "@anna.bakes" in told.text
    assert "still interrupted" in told.text and "Page" not in told.text
    assert told.button("Try again")["callback_data"].startswith("rn:")
    # Nothing replaced: the same (refused) token, still broken, no renewal event.
    assert await _kept_token(world) == (broken_token, broken_expiry)
    kept = await _connection(world)
    assert (kept.health, kept.instagram_username) == ("broken", "anna.bakes")
    assert await _events(world, "renewed") == []

    # Try again: Instagram now asks who logs in; this time as @anna.bakes.
    again = await _press(world, ANNA, told, "Try again")
    assert "Reconnect your Instagram account" in again.text
    assert "force_reauth=true" in await world.dialog_url(ANNA)
    page = await world.instagram_login(ANNA, IG_ANNA)
    assert "Connected again!" in page.text
    await world.telegram.wait_for(ANNA.id, "Connected again!")
    assert (await _connection(world)).health == "healthy"


async def test_a_healthy_instagram_connection_has_nothing_to_renew(ig_world: World) -> None:
    world = ig_world
    invitation_id = await _connect(world)
    world.telegram.send_text(ANNA, "/help")  # a message of hers to press an old button on
    await world.settle()
    before = len(world.telegram.messages(ANNA.id))
    world.telegram.press_data(
        ANNA, world.telegram.last_message(ANNA.id).message_id, Renew(invitation_id).pack()
    )
    await world.settle()
    [answer] = world.telegram.messages(ANNA.id)[before:]
    assert "Your connection works" in answer.text and "through Instagram Login" in answer.text
    assert "kept up automatically" in answer.text
    assert "runs until" not in answer.text and "before it ends" not in answer.text
    assert answer.buttons == []
    assert await world.rows("SELECT id FROM login_attempt WHERE renewal") == []


async def test_a_manager_reminder_carries_a_working_reconnect(ig_world: World) -> None:
    world = ig_world
    invitation_id = await _connect(world)
    await _break(world)
    world.telegram.send_text(MANAGER, "/health")
    await world.settle()
    before = len(world.telegram.messages(ANNA.id))
    world.telegram.press_data(
        MANAGER,
        world.telegram.last_message(MANAGER.id).message_id,
        RemindHealth(invitation_id).pack(),
    )
    await world.telegram.wait_for(MANAGER.id, "Reminder sent to @anna.bakes")
    reminder = await world.telegram.wait_for(ANNA.id, "A reminder from")
    assert reminder in world.telegram.messages(ANNA.id)[before:]
    assert "Instagram password" in reminder.text
    assert reminder.button("Reconnect")["callback_data"] == Renew(invitation_id).pack()
    offered = await _press(world, ANNA, reminder, "Reconnect")
    assert "Reconnect your Instagram account" in offered.text
    page = await world.instagram_login(ANNA, IG_ANNA)
    assert "Connected again!" in page.text
    assert (await _connection(world)).health == "healthy"


async def test_reconnect_in_german(ig_world: World) -> None:
    world = ig_world
    await _connect(world, BEN)  # Ben's Telegram speaks German
    notice = await _break(world, BEN)
    offered = await _press(world, BEN, notice, "Neu verbinden")
    assert "Instagram-Konto neu verbinden" in offered.text
    assert "mit Instagram an" in offered.text
    await world.instagram_login(BEN, IG_ANNA)
    told = await world.telegram.wait_for(BEN.id, "Wieder verbunden!")
    assert "über Instagram-Login" in told.text


async def test_profile_says_instagram_refused_the_read(ig_world: World) -> None:
    """A healthy-looking Instagram Login connection whose read is refused (the password was
    changed, no round has run yet): Instagram's refusal, not Facebook's."""
    world = ig_world
    await _connect(world)
    world.instagram.change_password(IG_ANNA.id)
    world.telegram.send_text(MANAGER, "/profile @anna.bakes")
    await world.settle()
    answer = world.telegram.last_message(MANAGER.id).text
    assert "Instagram refused the read for @anna.bakes" in answer, answer
    assert "Facebook" not in answer
