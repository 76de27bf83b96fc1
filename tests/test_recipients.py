"""Who hears a brand's news (issue 9): its current managers and its team chat, checked when a
message is composed and again when it is delivered; trouble with the team chat is the team chat's,
never the influencer's; each person's command menu follows their role. End to end, through the
stand-ins, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from sandbox.facebook import Consent
from sandbox.telegram import TgUser
from tests.world import ANNA, MANAGER, World, anna_on_facebook

OLGA = TgUser(id=5003, first_name="Olga", username="olga_brand", language_code="en")


async def _rows(world: World, sql: str, **params: object) -> list[tuple[object, ...]]:
    async with world.db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(sa.text(sql), params)).all()]


async def _delivered(world: World, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Until nothing is waiting in the outbox."""
    async with asyncio.timeout(timeout):
        while await _rows(world, "SELECT id FROM outbox WHERE status = 'pending'"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await world.settle()


async def _olga_manages_brand_1(world: World) -> None:
    """Maria (administrator) manages the first brand; Olga joins it through a manager link."""
    await world.say(MANAGER, "/list")  # Maria's first console command: brand 1 is made
    answer = await world.say(MANAGER, "/manager_link 1")
    link = next(w for w in answer[-1].text.split() if "t.me/" in w)
    payload = parse_qs(urlsplit(link).query)["start"][0]
    welcome = await world.say(OLGA, f"/start {payload}")
    assert "You are now a manager of" in welcome[-1].text


def _chat(world: World, user: TgUser) -> list[tuple[int, str, int]]:
    return [(m.message_id, m.text, m.edits) for m in world.telegram.messages(user.id)]


def _menu(world: World, user: TgUser) -> list[str]:
    menu = world.telegram.commands_for({"type": "chat", "chat_id": user.id})
    return [c["command"] for c in menu]


# --- point 1: the brand's current managers hear its news ------------------------------------------


async def test_a_removed_manager_no_longer_hears_the_brand_the_others_do(world: World) -> None:
    await _olga_manages_brand_1(world)
    token = await world.invite("anna.bakes", manager=OLGA)
    await world.open_link(ANNA, token)
    card = await world.telegram.wait_for(OLGA.id, "step 1 of 3")  # her card, while she manages
    assert card.kind == "photo"

    removed = await world.say(MANAGER, f"/manager_remove 1 {OLGA.id}")
    assert f"Removed Olga ({OLGA.id})" in removed[-1].text
    await _delivered(world)
    olga_before = _chat(world, OLGA)
    [(last_id,)] = await _rows(world, "SELECT max(id) FROM outbox")

    await world.answer(ANNA, "Yes")
    await world.answer(ANNA, "Yes")
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Connected!")
    news = await world.telegram.wait_for(MANAGER.id, "is connected")
    assert "@anna.bakes" in news.text
    await _delivered(world)

    # Olga's chat is as it was: no notice, and her old card is no longer edited.
    assert _chat(world, OLGA) == olga_before
    assert "step 1 of 3" in world.telegram.messages(OLGA.id)[-1].text.lower()
    assert await _rows(
        world, "SELECT count(*) FROM outbox WHERE chat_id = :c AND id > :i", c=OLGA.id, i=last_id
    ) == [(0,)]
    # What Maria got is marked as hers, for the check at delivery.
    assert (MANAGER.id, "manager", 1, MANAGER.id) in await _rows(
        world, "SELECT chat_id, audience, brand_id, manager_id FROM outbox WHERE kind = 'notice'"
    )


async def test_a_notice_for_someone_removed_before_delivery_is_dropped(world: World) -> None:
    await _olga_manages_brand_1(world)
    token = await world.invite("anna.bakes", manager=OLGA)
    await world.open_link(ANNA, token)
    await _delivered(world)
    # Both managers' notices meet a flood wait: they are composed while Olga still manages the
    # brand, and come up for delivery again only after she was removed.
    world.telegram.fail_next(
        "sendMessage",
        status=429,
        description="Too Many Requests: retry after 3",
        retry_after=3,
        count=2,
    )
    assert await world.bot.console.report_stalled(hours=0) == 1
    async with asyncio.timeout(10):
        while await _rows(  # noqa: ASYNC110
            world, "SELECT id FROM outbox WHERE kind = 'notice' AND attempts = 0"
        ):
            await asyncio.sleep(0.05)
    olga_rows = await _rows(
        world, "SELECT status FROM outbox WHERE kind = 'notice' AND chat_id = :c", c=OLGA.id
    )
    assert olga_rows == [("pending",)]  # composed for her: she was a manager then

    removed = await world.say(MANAGER, f"/manager_remove 1 {OLGA.id}")
    assert f"Removed Olga ({OLGA.id})" in removed[-1].text
    stalled = await world.telegram.wait_for(MANAGER.id, "has made no progress", timeout=15)
    assert "@anna.bakes" in stalled.text
    await _delivered(world)
    assert not any("no progress" in m.text for m in world.telegram.messages(OLGA.id))
    assert await _rows(
        world, "SELECT status FROM outbox WHERE kind = 'notice' AND chat_id = :c", c=OLGA.id
    ) == [("dropped",)]


async def test_privacy_notices_go_to_the_current_managers(world: World) -> None:
    await _olga_manages_brand_1(world)
    token = await world.invite("anna.bakes", manager=OLGA)
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(MANAGER.id, "is connected")
    await world.telegram.wait_for(OLGA.id, "is connected")  # both manage the brand now
    await world.say(MANAGER, f"/manager_remove 1 {OLGA.id}")
    await _delivered(world)
    olga_before = _chat(world, OLGA)

    world.telegram.send_text(ANNA, "/forget")
    await world.settle()
    world.telegram.press(ANNA, world.telegram.last_message(ANNA.id), "Yes, forget me")
    await world.settle()
    await world.telegram.wait_for(MANAGER.id, "@anna.bakes asked me to forget them")
    await _delivered(world)
    assert _chat(world, OLGA) == olga_before


# --- point 4: team chat trouble is the team chat's --------------------------------------------


async def _register_team(world: World, team: int) -> None:
    world.telegram.send_group_text(MANAGER, team, "Brandly team", "/team")
    await world.settle()
    assert "now receives the notifications" in world.telegram.last_message(team).text


async def test_a_team_chat_without_the_bot_is_unregistered_not_blamed_on_anna(
    world: World,
) -> None:
    team = -4001
    token = await world.invite("anna.bakes")
    await _register_team(world, team)
    world.telegram.remove_bot_from_group(team)

    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(declined={"instagram_basic"}))
    await world.telegram.wait_for(MANAGER.id, "tried to connect")
    gone = await world.telegram.wait_for(MANAGER.id, "no longer write to the team group chat")
    assert "Brandly" in gone.text and "/team" in gone.text
    await _delivered(world)

    texts = [m.text for m in world.telegram.messages(MANAGER.id)]
    assert not any("cannot reach" in t for t in texts)  # Anna is fine: she got her answer
    assert "Not connected yet" in world.telegram.last_message(ANNA.id).text
    assert await _rows(world, "SELECT kind FROM invitation_event WHERE kind = 'unreachable'") == []
    assert await _rows(world, "SELECT team_chat_id FROM brand") == [(None,)]
    assert await _rows(world, "SELECT status FROM outbox WHERE chat_id = :c", c=team) == [
        ("unreachable",)
    ]

    # Her next try is news for Maria only: the group is no longer written to.
    await world.answer(ANNA, "Try again")
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(MANAGER.id, "is connected")
    await _delivered(world)
    assert await _rows(world, "SELECT count(*) FROM outbox WHERE chat_id = :c", c=team) == [(1,)]


async def test_a_team_chat_upgraded_to_a_supergroup_is_followed(world: World) -> None:
    team, supergroup = -4002, -1004002
    token = await world.invite("anna.bakes")
    await _register_team(world, team)
    world.telegram.upgrade_group(team, supergroup)

    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    news = await world.telegram.wait_for(supergroup, "is connected", timeout=10)
    assert "@anna.bakes" in news.text
    await _delivered(world)
    assert await _rows(world, "SELECT team_chat_id FROM brand") == [(supergroup,)]
    assert await _rows(world, "SELECT chat_id, status FROM outbox WHERE chat_id < 0") == [
        (supergroup, "sent")
    ]
    assert not any("cannot reach" in m.text for m in world.telegram.messages(MANAGER.id))


async def test_an_influencer_who_blocked_the_bot_is_reported_to_every_manager(
    world: World,
) -> None:
    await _olga_manages_brand_1(world)
    token = await world.invite("anna.bakes", manager=OLGA)
    await world.through_checks(ANNA, token)
    world.telegram.block(ANNA.id)
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(cancel=True))
    for manager in (MANAGER, OLGA):
        await world.telegram.wait_for(manager.id, "cannot reach @anna.bakes")


# --- point 6: the command menu follows the role ---------------------------------------------------


async def test_the_command_menu_follows_the_role(world: World) -> None:
    # Maria is an administrator the bot had never talked to when it started: no menu of her own.
    assert _menu(world, MANAGER) == []
    await world.invite("anna.bakes")  # her first /invite makes her the first brand's manager
    assert {"invite", "list", "team", "brand_new", "manager_remove"} <= set(_menu(world, MANAGER))

    await _olga_manages_brand_1(world)
    assert "invite" in _menu(world, OLGA) and "brand_new" not in _menu(world, OLGA)

    await world.say(MANAGER, f"/manager_remove 1 {OLGA.id}")
    assert _menu(world, OLGA) == []  # Telegram shows her the default menu, the influencer's
    assert "start" in [c["command"] for c in world.telegram.commands_for()]

    await world.restart()  # set again at start-up, by role
    assert "invite" in _menu(world, MANAGER)
    assert _menu(world, OLGA) == []
