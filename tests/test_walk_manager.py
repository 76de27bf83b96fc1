"""Defects of the first playground walk (issue 9), as the brand's manager and the influencer met
them, end to end through the stand-ins on SQLite and PostgreSQL: repeated failures that need the
manager, handles as people paste them, /list filters and pages, /revoke's confirmation, what the
influencer learns when no access could be withdrawn, double taps, and /show's card."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from bot.console import PAGE_SIZE
from sandbox.facebook import Consent
from sandbox.telegram import SentMessage, TgUser
from tests.world import ANNA, MANAGER, World, anna_on_facebook


async def _told_times(world: World, user: TgUser, text: str, times: int) -> None:
    async with asyncio.timeout(10):
        while sum(text in m.text for m in world.telegram.messages(user.id)) < times:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def _labels(message: SentMessage) -> list[str]:
    return [b["text"] for row in message.buttons for b in row]


# --- 1. a failure that needs the manager gets its own message ---------------------------------


async def test_app_not_live_after_other_failures_still_reaches_the_manager(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    before = len(world.telegram.messages(MANAGER.id))
    tries = [
        Consent(declined={"instagram_basic"}),
        Consent(cancel=True),
        Consent(cancel=True),
        Consent(app_not_live=True),
    ]
    for number, consent in enumerate(tries, start=1):
        if number > 1:
            await world.answer(ANNA, "Try again")
        await world.facebook_login(ANNA, anna_on_facebook(), consent)
        await _told_times(world, ANNA, "Not connected yet", number)
    await world.telegram.wait_for(MANAGER.id, "4 logins did not work")
    async with asyncio.timeout(10):
        while not any(  # noqa: ASYNC110
            "Neither you nor @anna.bakes can fix this" in m.text
            for m in world.telegram.messages(MANAGER.id)[before:]
        ):
            await asyncio.sleep(0.05)
    news = world.telegram.messages(MANAGER.id)[before:]
    notices = [m for m in news if "tried to connect" in m.text]
    # The first failure, then the one Maria has to act on; the cancels only changed the card.
    assert len(notices) == 2, [m.text for m in news]
    assert "forward this message" in notices[-1].text


# --- 2. handles as people paste them ------------------------------------------------------


async def test_double_at_is_refused_bullets_and_profile_tabs_are_understood(world: World) -> None:
    await world.invite("anna.bakes")
    answers = await world.say(
        MANAGER, "/invite @@fritz\n• @ben.cooks\n- instagram.com/lena.l/reels/"
    )
    texts = "\n".join(m.text for m in answers)
    assert "@@fritz is not a valid Instagram username" in texts
    assert "• is not" not in texts and "- is not" not in texts
    assert "Invitation for @ben.cooks" in texts and "Invitation for @lena.l" in texts
    assert await world.rows("SELECT handle FROM invitation ORDER BY id") == [
        ("anna.bakes",),
        ("ben.cooks",),
        ("lena.l",),
    ]


# --- 4. and 9. /list filters -------------------------------------------------------------------


async def test_filtered_list_pages_by_its_own_count(world: World) -> None:
    await world.invite("anna.bakes")  # Maria's brand
    handles = "".join(f"person.{n}\n" for n in range(PAGE_SIZE + 1)).encode()
    world.telegram.send_document(MANAGER, "list.csv", handles)
    await world.settle()
    await world.say(MANAGER, "/revoke #1")
    [everything] = await world.say(MANAGER, "/list")
    assert "More ▶️" in _labels(everything)  # more than a page
    [failed] = await world.say(MANAGER, "/list failed")
    assert "Nothing here." in failed.text
    assert "More ▶️" not in _labels(failed)
    [withdrawn] = await world.say(MANAGER, "/list revoked")
    assert "#1 @anna.bakes" in withdrawn.text
    assert "More ▶️" not in _labels(withdrawn)
    [pending] = await world.say(MANAGER, "/list pending")
    assert "More ▶️" in _labels(pending)


async def test_list_takes_the_labels_it_shows(world: World) -> None:
    await world.invite("anna.bakes")
    await world.say(MANAGER, "/revoke @anna.bakes")
    await world.invite("ben.cooks")
    [withdrawn] = await world.say(MANAGER, "/list withdrawn")
    assert "Showing: withdrawn" in withdrawn.text
    assert "#1 @anna.bakes" in withdrawn.text and "ben.cooks" not in withdrawn.text
    [not_opened] = await world.say(MANAGER, "/list Not Opened")
    assert "#2 @ben.cooks" in not_opened.text and "anna.bakes" not in not_opened.text
    [german] = await world.say(MANAGER, "/list zurückgezogen")
    assert "#1 @anna.bakes" in german.text and "ben.cooks" not in german.text
    [usage] = await world.say(MANAGER, "/list nonsense")
    assert "not opened, in checks, at login, failed, connected, withdrawn" in usage.text
    assert "login_started" not in usage.text and "revoked" not in usage.text


# --- 8. "invite again anyway" tapped twice --------------------------------------------------


async def _connect_anna(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(MANAGER.id, "🟢 Connected: Instagram @anna.bakes")
    # Her own result too: on a busy machine it may reach her chat after the card's edit, and
    # would then be taken for an answer to what she says next.
    await world.telegram.wait_for(ANNA.id, "Connected!")


async def test_invite_again_tapped_twice_makes_one_card_and_a_toast(world: World) -> None:
    await _connect_anna(world)
    [offer] = await world.say(MANAGER, "/invite @anna.bakes")
    before = len(world.telegram.messages(MANAGER.id))
    world.telegram.press(MANAGER, offer, "again anyway")
    world.telegram.press(MANAGER, offer, "again anyway")  # the double tap, before any answer
    await world.settle()
    news = world.telegram.messages(MANAGER.id)[before:]
    assert [m.kind for m in news] == ["photo"], [m.text for m in news]
    assert "Invitation for @anna.bakes · #2" in news[0].text
    toasts = [c.get("text", "") for c in world.telegram.calls("answerCallbackQuery")[-2:]]
    assert sum("already has an open invitation (#2)" in text for text in toasts) == 1
    assert await world.rows("SELECT id, status FROM invitation ORDER BY id") == [
        (1, "connected"),
        (2, "pending"),
    ]


# --- 6. /revoke of a connected invitation asks first --------------------------------------


async def test_revoking_a_connection_asks_and_names_the_invitation(world: World) -> None:
    await _connect_anna(world)
    [offer] = await world.say(MANAGER, "/invite @anna.bakes")
    world.telegram.press(MANAGER, offer, "again anyway")
    await world.settle()
    [question] = await world.say(MANAGER, "/revoke @anna.bakes")
    assert "Withdraw invitation #1 for @anna.bakes and remove the connection?" in question.text
    assert "Other invitations for @anna.bakes" in question.text
    assert "#2 · not opened" in question.text
    assert _labels(question) == ["⛔ Withdraw", "Keep"]
    assert await world.rows("SELECT status FROM invitation ORDER BY id") == [
        ("connected",),
        ("pending",),
    ]

    world.telegram.press(MANAGER, question, "Keep")
    await world.settle()
    assert "stays connected" in world.telegram.last_message(MANAGER.id).text
    assert world.telegram.messages(MANAGER.id)[-2].buttons == []
    assert await world.rows("SELECT status FROM connection") == [("active",)]

    [question] = await world.say(MANAGER, "/revoke 1")
    world.telegram.press(MANAGER, question, "Withdraw")
    world.telegram.press(MANAGER, question, "Withdraw")  # a double tap
    await world.settle()
    done = [m for m in world.telegram.messages(MANAGER.id) if "⛔ Invitation #1" in m.text]
    assert len(done) == 1 and "@anna.bakes's connection is removed" in done[0].text
    await world.telegram.wait_for(ANNA.id, "was withdrawn by the brand")
    assert world.graph.revoked == ["fb-anna"]
    assert await world.rows("SELECT status FROM invitation ORDER BY id") == [
        ("revoked",),
        ("pending",),
    ]
    # The open one is withdrawn at once, as before; the answer lists the other one.
    [withdrawn] = await world.say(MANAGER, "/revoke @anna.bakes")
    assert "Invitation #2 for @anna.bakes withdrawn" in withdrawn.text
    assert "#1 · withdrawn" in withdrawn.text and withdrawn.buttons == []


# --- 7. no token stored: the influencer learns how to remove the app on Facebook ------------

_REMOVE_APP = "Settings & privacy → Settings → Apps and websites"


async def _forget_the_token(world: World) -> None:
    """A connection whose access token is not stored (e.g. kept from before tokens were)."""
    async with world.db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE connection SET token_encrypted = NULL"))


async def test_revoke_without_a_token_tells_the_influencer_to_remove_the_app(
    world: World,
) -> None:
    await _connect_anna(world)
    await _forget_the_token(world)
    answers = await world.revoke("@anna.bakes")
    assert "No access token was stored" in answers[-1].text
    told = await world.telegram.wait_for(ANNA.id, "was withdrawn by the brand")
    assert _REMOVE_APP in told.text and "could not withdraw the app's access" in told.text
    assert world.graph.revoked == []


async def test_revoke_with_a_token_promises_nothing_to_do(world: World) -> None:
    await _connect_anna(world)
    await world.revoke("@anna.bakes")
    told = await world.telegram.wait_for(ANNA.id, "was withdrawn by the brand")
    assert _REMOVE_APP not in told.text
    assert world.graph.revoked == ["fb-anna"]


async def test_forget_without_a_token_promises_nothing_and_says_how(world: World) -> None:
    await _connect_anna(world)
    await _forget_the_token(world)
    [ask] = await world.say(ANNA, "/forget")
    assert "and withdraw the app's access at Facebook" not in ask.text
    assert "cannot withdraw the app's access at Facebook myself" in ask.text
    world.telegram.press(ANNA, ask, "Yes, forget me")
    await world.settle()
    done = world.telegram.last_message(ANNA.id)
    assert "your connection data is deleted" in done.text and _REMOVE_APP in done.text
    assert await world.rows("SELECT count(*) FROM connection") == [(0,)]


async def test_forget_with_a_token_withdraws_it_without_the_hint(world: World) -> None:
    await _connect_anna(world)
    [ask] = await world.say(ANNA, "/forget")
    assert "and withdraw the app's access at Facebook" in ask.text
    world.telegram.press(ANNA, ask, "Yes, forget me")
    await world.settle()
    done = world.telegram.last_message(ANNA.id)
    assert "your connection data is deleted" in done.text and _REMOVE_APP not in done.text
    assert world.graph.revoked == ["fb-anna"]


# --- 13. /show's card and connection line; the card after /forget ------------------------------


async def test_show_stamps_the_last_change_and_reads_the_connection_as_a_sentence(
    world: World,
) -> None:
    await _connect_anna(world)
    last_change = "2026-01-02 03:04:05"
    async with world.db.engine.begin() as conn:
        await conn.execute(sa.text(f"UPDATE invitation SET updated_at = '{last_change}'"))
        await conn.execute(sa.text(f"UPDATE invitation_event SET at = '{last_change}'"))
        await conn.execute(sa.text(f"UPDATE connection SET created_at = '{last_change}'"))
    [shown] = await world.say(MANAGER, "/show @anna.bakes")
    assert "Updated 2 Jan 2026 03:04 UTC" in shown.text
    assert "Connected on 2 Jan 2026: Instagram @anna.bakes via the Page Anna Bakes." in shown.text
    assert "Page ID p-100 · Instagram ID ig-100" in shown.text
    assert "active" not in shown.text


async def test_card_after_forget_says_the_data_was_deleted_on_request(world: World) -> None:
    await _connect_anna(world)
    [ask] = await world.say(ANNA, "/forget")
    world.telegram.press(ANNA, ask, "Yes, forget me")
    await world.settle()
    card = await world.telegram.wait_for(MANAGER.id, "data deleted at the influencer's request")
    assert card.kind == "photo" and "Withdrawn" not in card.text
    [shown] = await world.say(MANAGER, "/show 1")
    assert "🗑 Closed: data deleted at the influencer's request" in shown.text
    [listed] = await world.say(MANAGER, "/list")
    assert "#1 @anna.bakes" in listed.text
