"""Instagram's words where a connection made through Instagram Login is concerned (issue 13 QA),
end to end on SQLite and PostgreSQL: the /show timeline of a kept connection names no Facebook
password and no Page, and a brand's webhook names the way chosen before a connection exists."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from bot.i18n import Language, Texts
from bot.models import Brand, Connection, InvitationEvent
from bot.timeline import sentence
from sandbox.instagram import AccountType, IgPerson
from sandbox.telegram import SentMessage
from tests.world import ANNA, MANAGER, World, anna_on_facebook, close_world, make_world

IG_ANNA = IgPerson("anna.bakes", name="Anna Bakes", followers_count=12345, media_count=310)


async def _update(world: World, statement: sa.Update) -> None:
    async with world.db.transaction() as s:
        await s.exec(statement)


async def _to_instagram_login(world: World, token: str | None = None) -> None:
    """@anna.bakes invited (unless `token`) and opened; "No" to the Page question, "Yes" to the
    professional account: the Instagram path's login button is in her chat."""
    token = token or await world.invite("@anna.bakes")
    await world.open_link(ANNA, token)
    await world.answer(ANNA, "No")
    await world.answer(ANNA, "Yes")


async def _press(world: World, message: SentMessage, label: str) -> None:
    world.telegram.press(ANNA, message, label)
    await world.settle()


async def test_show_tells_a_kept_instagram_connection_in_instagrams_words(
    ig_world: World,
) -> None:
    world = ig_world
    await _to_instagram_login(world)
    await world.instagram_login(ANNA, IG_ANNA)
    await world.telegram.wait_for(ANNA.id, "through Instagram Login")
    # Anna changes her Instagram password: the next health round finds out and tells her.
    world.instagram.change_password(IG_ANNA.id)
    await _update(world, sa.update(Connection).values(next_check_at=None))
    await world.bot.upkeep.run_round()
    await world.settle()
    notice = await world.telegram.wait_for(ANNA.id, "Instagram password")
    await _press(world, notice, "Reconnect")
    await world.instagram_login(ANNA, IG_ANNA)
    await world.telegram.wait_for(ANNA.id, "Connected again!")

    [shown] = await world.say(MANAGER, "/show @anna.bakes")
    history = shown.text.split("Timeline", 1)[1].split("Connected on", 1)[0]
    assert "⚠️ the connection broke: Instagram password changed" in history
    assert (
        "✅ @anna.bakes reconnected through Instagram Login: same Instagram account, working again"
        in history
    )
    # Once connected, the connection's life names no Facebook and no Page.
    life = history.split("through Instagram Login", 1)[1]
    assert "Facebook" not in life and "Page" not in life


def _event(kind: str, detail: str, facts: str | None = None) -> InvitationEvent:
    return InvitationEvent(
        invitation_id=1, kind=kind, status="connected", detail=detail, facts=facts
    )


@pytest.mark.parametrize(
    ("language", "kind", "detail", "facebook", "instagram"),
    [
        (
            "en",
            "health",
            "disconnected:app_removed",
            "app removed on Facebook",
            "app removed on Instagram",
        ),
        (
            "en",
            "renewed",
            "",
            "same Page, same Instagram account",
            "renewed access: same Instagram account",
        ),
        (
            "en",
            "health",
            "renewal_due",
            "data access through Facebook",
            "the Instagram login ends soon",
        ),
        ("de", "health", "broken:password_changed", "Facebook-Passwort", "Instagram-Passwort"),
        ("de", "renewed", "reconnected", "gleiche Seite", "über Instagram-Login neu verbunden"),
    ],
)
def test_a_connections_life_in_the_words_of_its_way_in(
    language: Language, kind: str, detail: str, facebook: str, instagram: str
) -> None:
    """The same stored event, for a connection through a Facebook Page and through Instagram
    Login (the path `/show` reads off the invitation's events)."""
    t = Texts(language)
    event = _event(kind, detail)
    on_facebook = sentence(t, event, handle="anna.bakes", platform="Brandly", path="facebook")
    on_instagram = sentence(t, event, handle="anna.bakes", platform="Brandly", path="instagram")
    assert facebook in on_facebook and facebook not in on_instagram
    assert instagram in on_instagram
    assert "Page" not in on_instagram and "Seite" not in on_instagram


async def test_a_failed_instagram_login_is_reported_with_its_way_in(ig_world: World) -> None:
    world = ig_world
    token = await world.invite("@anna.bakes")  # the brand exists from here on
    await _update(world, sa.update(Brand).values(webhook_url="http://127.0.0.1:9/hook"))
    await _to_instagram_login(world, token)
    await world.instagram_login(ANNA, IgPerson("anna.bakes", AccountType.PERSONAL))
    await world.telegram.wait_for(ANNA.id, "personal Instagram account")

    rows = await world.rows("SELECT type, body FROM webhook_delivery ORDER BY id")
    bodies = {str(kind): json.loads(str(body)) for kind, body in rows}
    # Opened before any way was chosen: no way yet.
    assert bodies["invitation.opened"]["path"] is None
    failed = bodies["connection.failed"]
    assert failed["reason"] == "instagram_not_professional"
    assert failed["path"] == "instagram"
    assert failed["instagram_id"] is None and failed["page_id"] is None


async def test_a_failed_facebook_login_is_reported_with_its_way_in(database_url: str) -> None:
    """Without Instagram Login configured the only way is the Page's: chosen from the start."""
    world = await make_world(database_url)
    try:
        await world.bot.jobs.stop()
        token = await world.invite("@anna.bakes")
        await _update(world, sa.update(Brand).values(webhook_url="http://127.0.0.1:9/hook"))
        await world.through_checks(ANNA, token)
        await world.facebook_login(ANNA, anna_on_facebook(is_published=False))
        rows = await world.rows("SELECT type, body FROM webhook_delivery ORDER BY id")
        bodies = {str(kind): json.loads(str(body)) for kind, body in rows}
        failed = bodies["connection.failed"]
        assert failed["reason"] == "page_unpublished" and failed["path"] == "facebook"
        assert bodies["invitation.opened"]["path"] == "facebook"
    finally:
        await close_world(world)
