"""Loose ends of the Instagram Login path in the brand's console and the influencer's texts
(issue 13), end to end on SQLite and PostgreSQL: /show's sentences for the ways in, the live card
at Instagram Login's login step, /stats counting Instagram Login's check, the Facebook login's
button taken off when the influencer switches to Instagram Login, and /help naming both ways."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from bot.i18n import Texts
from bot.store.events import EventKind, new_event
from bot.timeline import sentence
from sandbox.facebook import FbUser
from sandbox.telegram import SentMessage, TgUser
from tests.world import ANNA, BEN, MANAGER, World, close_world, make_world

ANNA_WITHOUT_PAGE = FbUser(id="fb-anna", name="Anna", pages=[])
IG_LOGIN_CARD = "🟠 Step 2 of 2 · Instagram login handed out"


@pytest.fixture
async def ig_world(database_url: str) -> AsyncIterator[World]:
    world = await make_world(database_url, instagram=True)
    try:
        yield world
    finally:
        await close_world(world)


async def _opened(world: World, user: TgUser = ANNA) -> SentMessage:
    return await world.open_link(user, await world.invite("anna.bakes"))


async def _show(world: World) -> list[str]:
    """/show's timeline sentences, without their times."""
    replies = await world.say(MANAGER, "/show @anna.bakes")
    assert replies
    lines = "\n".join(m.text for m in replies).splitlines()
    return [line.split(" · ", 1)[1] for line in lines if line[:2].isdigit() and " · " in line]


async def _events(world: World) -> list[tuple[object, ...]]:
    return await world.rows("SELECT kind, detail FROM invitation_event ORDER BY id")


async def test_the_instagram_path_in_show_on_the_card_and_in_stats(ig_world: World) -> None:
    await _opened(ig_world)
    await ig_world.answer(ANNA, "I don't know")
    await ig_world.answer(ANNA, "How do I check?")
    await ig_world.answer(ANNA, "❌ No")
    login = await ig_world.answer(ANNA, "Done")
    assert login.buttons and "url" in login.buttons[0][0]

    # The first login of the invitation names Instagram's window, as later ones do.
    assert (await _events(ig_world))[-2:] == [
        ("check_passed", "ig_professional:done"),
        ("login_started", "instagram"),
    ]
    assert await _show(ig_world) == [
        "invitation for @anna.bakes created",
        "@anna.bakes opened the link",
        "@anna.bakes was not sure whether the account is linked to a Facebook Page: on the"
        " Instagram Login path",
        "@anna.bakes asked how to check for a professional Instagram account",
        "@anna.bakes said the Instagram account is not a professional account yet and got"
        " instructions",
        "@anna.bakes switched the Instagram account to a professional account, following my"
        " instructions",
        "@anna.bakes got the Instagram login button",
    ]
    # The live card: two steps on this way in, and its login named.
    card = await ig_world.telegram.wait_for(MANAGER.id, IG_LOGIN_CARD)
    assert "Step 3 of 3" not in card.text and "Facebook" not in card.text.splitlines()[1]

    # /stats counts Instagram Login's check as the checks passed.
    [stats] = await ig_world.say(MANAGER, "/stats")
    assert "Checks passed: 1" in stats.text, stats.text


async def test_no_page_then_a_professional_account_in_show(ig_world: World) -> None:
    await _opened(ig_world)
    await ig_world.answer(ANNA, "❌ No")
    await ig_world.answer(ANNA, "Yes")  # a professional account: Instagram Login's window
    shown = await _show(ig_world)
    assert shown[2:] == [
        "@anna.bakes said the account is not linked to a Facebook Page: on the Instagram Login"
        " path",
        "@anna.bakes confirmed a professional Instagram account (Business or Creator)",
        "@anna.bakes got the Instagram login button",
    ]


async def test_instagram_check_no_then_facebook_in_show(ig_world: World) -> None:
    await _opened(ig_world)
    await ig_world.answer(ANNA, "❌ No")
    await ig_world.answer(ANNA, "❌ No")
    await ig_world.answer(ANNA, "Use a Facebook Page instead")
    await ig_world.answer(ANNA, "Yes")
    await ig_world.answer(ANNA, "Yes")
    shown = await _show(ig_world)
    assert "@anna.bakes went on with a Facebook Page instead of Instagram Login" in shown
    assert shown[-1] == "@anna.bakes got the Facebook login button"
    card = await ig_world.telegram.wait_for(MANAGER.id, "Step 3 of 3 · Facebook login handed out")
    assert IG_LOGIN_CARD not in card.text
    [stats] = await ig_world.say(MANAGER, "/stats")
    assert "Checks passed: 1" in stats.text, stats.text  # one invitation, counted once


async def test_switching_to_instagram_login_takes_the_facebook_button_off(
    ig_world: World,
) -> None:
    await _opened(ig_world)
    await ig_world.answer(ANNA, "Yes, it is")
    await ig_world.answer(ANNA, "Yes")
    login = await ig_world.answer(ANNA, "Yes")
    await ig_world.facebook_login(ANNA, ANNA_WITHOUT_PAGE)
    failed = await ig_world.telegram.wait_for(ANNA.id, "Not connected yet")
    # The login button's note written late (by another replica, after the verdict took the
    # buttons off): that message is noted as carrying the used login's button again.
    [(attempt_id,)] = await ig_world.rows("SELECT id FROM login_attempt")
    notes = ig_world.db.steps.notes
    notes.note_login_button(int(str(attempt_id)), ANNA.id, login.message_id)
    await notes.flush()
    edits = len(_markup_edits(ig_world, login.message_id))

    ig_world.telegram.press(ANNA, failed, "Connect with Instagram instead")
    await ig_world.settle()
    await ig_world.telegram.wait_for(MANAGER.id, "Instagram Login · step 1 of 2")
    # The switch took the Facebook login's button off that message, in its own transaction.
    assert await ig_world.rows("SELECT button_chat_id, button_message_id FROM login_attempt") == [
        (None, None)
    ]
    [(queued,)] = await ig_world.rows(
        "SELECT count(*) FROM outbox"
        f" WHERE kind = 'markup' AND edit_message_id = {login.message_id}"
    )
    assert queued == 2  # the verdict's, and the switch's
    await _wait_for(lambda: len(_markup_edits(ig_world, login.message_id)) > edits)
    assert _login_buttons(ig_world) == []

    shown = await _show(ig_world)
    assert shown[2] == (
        "@anna.bakes said the account is linked to a Facebook Page they manage: on the"
        " Facebook Page path"
    )
    assert shown[-1] == "@anna.bakes switched to Instagram Login after a failed Facebook login"
    await ig_world.answer(ANNA, "Yes")
    # Its first Instagram login: the Instagram login button (not "a new Facebook login link").
    assert (await _events(ig_world))[-1] == ("login_started", "instagram")
    assert (await _show(ig_world))[-1] == "@anna.bakes got the Instagram login button"
    await ig_world.telegram.wait_for(MANAGER.id, IG_LOGIN_CARD)
    assert len(_login_buttons(ig_world)) == 1


def _markup_edits(world: World, message_id: int) -> list[object]:
    return [
        c
        for c in world.telegram.calls("editMessageReplyMarkup")
        if c.get("message_id") == message_id
    ]


def _login_buttons(world: World) -> list[int]:
    return [
        m.message_id
        for m in world.telegram.messages(ANNA.id)
        if any("url" in b for row in m.buttons for b in row)
    ]


async def _wait_for(done: Callable[[], bool], seconds: float = 10.0) -> None:
    """Until the outbox's delivery worker has done it (it runs on its own)."""
    async with asyncio.timeout(seconds):
        while True:
            if done():
                return
            await asyncio.sleep(0.02)


async def test_help_names_both_ways(ig_world: World) -> None:
    [english] = await ig_world.say(ANNA, "/help")
    assert "with a Facebook Page linked to it (two quick checks, then the Facebook login)" in (
        english.text
    )
    assert "or with Instagram Login, no Page needed" in english.text
    [german] = await ig_world.say(BEN, "/help")
    assert "über eine damit verknüpfte Facebook-Seite" in german.text
    assert "ganz ohne Seite über Instagram-Login" in german.text


@pytest.mark.parametrize(
    ("kind", "detail", "german"),
    [
        ("check_answered", "path:yes", "weiter über die Facebook-Seite"),
        ("check_answered", "path:no", "mit keiner Facebook-Seite verknüpft"),
        ("check_answered", "path:unsure", "wusste nicht, ob das Konto"),
        ("check_answered", "path:facebook", "Instagram-Login war für die Marke nicht mehr offen"),
        ("check_answered", "path:instagram", "macht über Instagram-Login weiter"),
        ("check_passed", "ig_professional:yes", "ein professionelles Konto ist"),
        ("check_passed", "ig_professional:done", "nach meiner Anleitung auf ein professionelles"),
        ("check_answered", "ig_professional:no", "noch kein professionelles Konto"),
        ("check_answered", "ig_professional:how", "wie man ein professionelles Instagram-Konto"),
        ("check_answered", "ig_professional:facebook", "statt mit Instagram-Login"),
        ("check_answered", "login:instagram", "zu Instagram-Login gewechselt"),
        ("login_started", "instagram", "Button für die Instagram-Anmeldung"),
    ],
)
def test_every_way_in_has_its_sentence_in_both_languages(
    kind: str, detail: str, german: str
) -> None:
    event = new_event(1, EventKind(kind), "opened", detail)
    generic = {str(Texts(lang)("console.timeline.other", what=kind)) for lang in ("en", "de")}
    for lang in ("en", "de"):
        said = sentence(Texts(lang), event, handle="anna.bakes", platform="Brandly")
        assert said.startswith("@anna.bakes ") and said not in generic, said
        assert detail not in said  # never the internal code
    assert german in sentence(Texts("de"), event, handle="anna.bakes", platform="Brandly")
