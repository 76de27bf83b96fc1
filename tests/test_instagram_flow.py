"""The influencer's chat on the way to the second way in (issue 13), end to end on SQLite and
PostgreSQL: the question which way fits (only where both are open), Instagram Login's own check,
the way stored on the invitation and on its login, a failed Facebook login offering Instagram
Login, brands restricted to one way, double taps and old buttons, German."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from bot.buttons import Action, Press
from bot.models import BrandPaths, LoginPath, Step
from bot.paths import brand_values_opening, first_step, first_steps, open_paths
from sandbox.facebook import FbUser
from sandbox.telegram import SentMessage, TgUser
from tests.world import ANNA, BEN, MANAGER, World, anna_on_facebook, close_world, make_world

ANNA_WITHOUT_PAGE = FbUser(id="fb-anna", name="Anna", pages=[])
PATH_QUESTION = "Is @anna.bakes linked to a Facebook Page you manage?"
IG_CHECK = "Step 1 of 2 · Is @anna.bakes a professional account?"
FB_CHECK = "Step 1 of 3 · Is your Facebook Page public?"
NOT_OPEN_INSTAGRAM = (
    "Instagram Login is not open for your invitation: please connect through your Facebook Page."
)


@pytest.fixture
async def ig_world(database_url: str) -> AsyncIterator[World]:
    """The whole product with Instagram Login configured (the second Meta app, on its stand-in).
    Anna taps and types faster than a person's fair share (8 at once, then 1 a second): the
    flood guard, tested elsewhere, is widened so that none of her updates is skipped."""
    w = await make_world(database_url, instagram=True, person_update_burst=50)
    try:
        yield w
    finally:
        await close_world(w)


# --- bot.paths, pure ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    instagram_login_configured: bool


BOTH = frozenset({LoginPath.FACEBOOK, LoginPath.INSTAGRAM})
FACEBOOK = frozenset({LoginPath.FACEBOOK})
INSTAGRAM = frozenset({LoginPath.INSTAGRAM})


@pytest.mark.parametrize(
    ("configured", "brand", "expected"),
    [
        (True, "both", BOTH),
        (True, None, BOTH),  # an invitation without a brand
        (True, "facebook", FACEBOOK),
        (True, "instagram", INSTAGRAM),
        (True, "something-newer", BOTH),
        (False, "both", FACEBOOK),
        (False, None, FACEBOOK),
        (False, "facebook", FACEBOOK),
        (False, "instagram", FACEBOOK),  # never no way in at all
    ],
)
def test_open_paths(configured: bool, brand: str | None, expected: frozenset[LoginPath]) -> None:
    assert open_paths(_Settings(configured), brand) == expected


def test_first_steps_and_the_brands_that_open_a_way() -> None:
    assert first_step(BOTH) == (Step.PATH, None)
    assert first_step(INSTAGRAM) == (Step.IG_PROFESSIONAL, LoginPath.INSTAGRAM)
    assert first_step(FACEBOOK) == (Step.PAGE_PUBLIC, None)
    assert first_steps(_Settings(False)) == {v.value: (Step.PAGE_PUBLIC, None) for v in BrandPaths}
    assert first_steps(_Settings(True))["both"] == (Step.PATH, None)
    configured, not_configured = _Settings(True), _Settings(False)
    assert brand_values_opening(configured, LoginPath.INSTAGRAM) == {"both", "instagram"}
    assert brand_values_opening(configured, LoginPath.FACEBOOK) == {"both", "facebook"}
    assert brand_values_opening(not_configured, LoginPath.INSTAGRAM) == frozenset()
    assert brand_values_opening(not_configured, LoginPath.FACEBOOK) == {
        "both",
        "facebook",
        "instagram",
    }


# --- helpers -----------------------------------------------------------------------------------


def _labels(message: SentMessage) -> list[list[str]]:
    return [[b["text"] for b in row] for row in message.buttons]


def _heads(messages: list[SentMessage]) -> list[str]:
    return [m.text.splitlines()[0] for m in messages]


async def _execute(world: World, sql: str) -> None:
    async with world.db.engine.begin() as conn:
        await conn.execute(sa.text(sql))


async def _invited(world: World, *, paths: str | None = None, handle: str = "anna.bakes") -> str:
    """The manager's invitation link token; `paths`: the brand's `login_paths`, set as an admin's
    /paths would (before the link is opened)."""
    token = await world.invite(handle)
    if paths is not None:
        await _execute(world, f"UPDATE brand SET login_paths = '{paths}'")
    return token


async def _opened(
    world: World, user: TgUser = ANNA, *, paths: str | None = None, handle: str = "anna.bakes"
) -> SentMessage:
    return await world.open_link(user, await _invited(world, paths=paths, handle=handle))


async def _invitation(world: World) -> tuple[object, ...]:
    [row] = await world.rows("SELECT step, path, status FROM invitation")
    return row


def _toasts(world: World, since: int) -> list[object]:
    return [a.get("text") for a in world.telegram.callback_answers[since:]]


async def _to_instagram_check(world: World, user: TgUser = ANNA) -> SentMessage:
    await _opened(world, user)
    return await world.answer(user, "I don't know")


async def _failed_facebook_login(world: World) -> SentMessage:
    """On the Facebook path (the Page is linked, she says), the login shares no Page."""
    await _opened(world)
    await world.answer(ANNA, "Yes, it is")
    await world.answer(ANNA, "Yes")
    login = await world.answer(ANNA, "Yes")
    assert login.text.startswith("Step 3 of 3 · Log in with Facebook")
    await world.facebook_login(ANNA, ANNA_WITHOUT_PAGE)
    failed = await world.telegram.wait_for(ANNA.id, "Not connected yet")
    assert failed.text.startswith("❌ Not connected yet.")
    return failed


# --- the question which way fits ---------------------------------------------------------------


async def test_the_question_comes_first_where_both_ways_are_open(ig_world: World) -> None:
    question = await _opened(ig_world)
    welcome = ig_world.telegram.messages(ANNA.id)[-2]
    assert "1. One question about your account" in welcome.text
    assert "Log in (with Instagram or Facebook)" in welcome.text
    assert question.text.startswith(PATH_QUESTION)
    assert "no Facebook Page needed" in question.text
    assert _labels(question) == [["✅ Yes, it is", "❌ No"], ["🤷 I don't know"]]
    assert await _invitation(ig_world) == ("path", None, "opened")
    # The manager's card says where the influencer is.
    await ig_world.telegram.wait_for(MANAGER.id, "choosing the way in")


async def test_without_the_instagram_app_nothing_changes(world: World) -> None:
    question = await _opened(world)
    welcome = world.telegram.messages(ANNA.id)[-2]
    assert "1. Two quick checks about your Facebook Page" in welcome.text
    assert question.text.startswith(FB_CHECK)
    assert await _invitation(world) == ("page_public", None, "opened")
    # A forged "Connect with Instagram instead" changes nothing there either.
    await world.answer(ANNA, "Yes")
    await world.answer(ANNA, "Yes")
    await world.facebook_login(ANNA, ANNA_WITHOUT_PAGE)
    failed = await world.telegram.wait_for(ANNA.id, "Not connected yet")
    assert "Instagram Login" not in failed.text
    assert _labels(failed) == [["🔁 Try again"]]
    [(invitation_id,)] = await world.rows("SELECT id FROM invitation")
    before = len(world.telegram.callback_answers)
    world.telegram.press_data(
        ANNA, failed.message_id, Press(Action.SWITCH, int(str(invitation_id)), Step.LOGIN).pack()
    )
    await world.settle()
    assert _toasts(world, before) == [NOT_OPEN_INSTAGRAM]
    assert await _invitation(world) == ("login", None, "failed")


async def test_yes_leads_to_the_facebook_path(ig_world: World) -> None:
    await _opened(ig_world)
    check = await ig_world.answer(ANNA, "Yes, it is")
    assert check.text.startswith(FB_CHECK)  # as without the second way: nothing said before it
    assert await _invitation(ig_world) == ("page_public", "facebook", "opened")
    await ig_world.answer(ANNA, "Yes")
    login = await ig_world.answer(ANNA, "Yes")
    assert login.text.startswith("Step 3 of 3 · Log in with Facebook")
    assert await ig_world.rows("SELECT path FROM login_attempt") == [("facebook",)]
    assert (await ig_world.dialog_url(ANNA)).startswith(ig_world.graph.base_url)
    kinds = await ig_world.rows("SELECT kind, detail FROM invitation_event ORDER BY id")
    assert kinds[2:4] == [("check_answered", "path:yes"), ("check_passed", "page_public:yes")]


@pytest.mark.parametrize(
    ("label", "word", "why"),
    [
        ("❌ No", "no", "Then Instagram Login is the way for you: no Facebook Page needed."),
        (
            "I don't know",
            "unsure",
            "No problem: then Instagram Login is the quicker way, no Facebook Page needed.",
        ),
    ],
)
async def test_no_and_dont_know_lead_to_instagram_login(
    ig_world: World, label: str, word: str, why: str
) -> None:
    await _opened(ig_world)
    check = await ig_world.answer(ANNA, label)
    assert _heads([check]) == [why]
    assert IG_CHECK in check.text
    assert "<b>Creator</b> or <b>Business</b>" in check.text or "Creator" in check.text
    assert _labels(check) == [["✅ Yes", "❌ No"], ["❓ How do I check?"]]
    assert await _invitation(ig_world) == ("ig_professional", "instagram", "opened")

    # No: how to switch in the app, and Done; the Facebook path is offered too (both are open).
    fix = await ig_world.answer(ANNA, "❌ No")
    assert fix.text.startswith("How to switch to a professional account")
    assert "Account type and tools" in fix.text and "Switch to professional account" in fix.text
    assert _labels(fix) == [["✅ Done"], ["📄 Use a Facebook Page instead"]]

    login = await ig_world.answer(ANNA, "Done")
    assert not any("Step 3 of 3" in m.text for m in ig_world.telegram.messages(ANNA.id))
    assert login.buttons and "url" in login.buttons[0][0]
    assert await ig_world.rows("SELECT path FROM login_attempt") == [("instagram",)]
    assert await _invitation(ig_world) == ("login", "instagram", "login_started")
    window = await ig_world.dialog_url(ANNA)
    assert window.startswith(f"{ig_world.instagram.base_url}/oauth/authorize?")
    details = [d for (d,) in await ig_world.rows("SELECT detail FROM invitation_event ORDER BY id")]
    expected = [f"path:{word}", "ig_professional:no", "ig_professional:done", "instagram"]
    assert details[2:] == expected


async def test_how_to_check_a_professional_account(ig_world: World) -> None:
    await _to_instagram_check(ig_world)
    how = await ig_world.answer(ANNA, "How do I check?")
    assert how.text.startswith("How to check")
    assert "Professional dashboard" in how.text
    assert _labels(how) == [["✅ Yes", "❌ No"], ["❓ How do I check?"]]
    await ig_world.answer(ANNA, "Yes")
    assert await ig_world.rows("SELECT path FROM login_attempt") == [("instagram",)]


async def test_instagram_check_no_then_the_facebook_page_after_all(ig_world: World) -> None:
    await _to_instagram_check(ig_world)
    await ig_world.answer(ANNA, "❌ No")
    check = await ig_world.answer(ANNA, "Use a Facebook Page instead")
    assert check.text.startswith(FB_CHECK)
    assert await _invitation(ig_world) == ("page_public", "facebook", "opened")
    await ig_world.answer(ANNA, "Yes")
    login = await ig_world.answer(ANNA, "Yes")
    assert login.text.startswith("Step 3 of 3 · Log in with Facebook")
    assert await ig_world.rows("SELECT path FROM login_attempt") == [("facebook",)]


# --- brands restricted to one way --------------------------------------------------------------


async def test_a_brand_with_instagram_login_only_never_asks(ig_world: World) -> None:
    check = await _opened(ig_world, paths="instagram")
    welcome = ig_world.telegram.messages(ANNA.id)[-2]
    assert "1. One quick check about your Instagram account" in welcome.text
    assert check.text.startswith(IG_CHECK)
    assert await _invitation(ig_world) == ("ig_professional", "instagram", "opened")
    fix = await ig_world.answer(ANNA, "❌ No")
    assert _labels(fix) == [["✅ Done"]]  # no Facebook Page offered
    assert "Facebook Page" not in fix.text
    await ig_world.answer(ANNA, "Done")
    assert await ig_world.rows("SELECT path FROM login_attempt") == [("instagram",)]
    texts = "\n".join(m.text for m in ig_world.telegram.messages(ANNA.id))
    assert PATH_QUESTION not in texts and "Step 1 of 3" not in texts


async def test_a_brand_with_the_facebook_page_only_never_offers_instagram(
    ig_world: World,
) -> None:
    check = await _opened(ig_world, paths="facebook")
    assert check.text.startswith(FB_CHECK)
    assert await _invitation(ig_world) == ("page_public", None, "opened")
    await ig_world.answer(ANNA, "Yes")
    await ig_world.answer(ANNA, "Yes")
    await ig_world.facebook_login(ANNA, ANNA_WITHOUT_PAGE)
    failed = await ig_world.telegram.wait_for(ANNA.id, "Not connected yet")
    assert "Instagram Login" not in failed.text
    assert _labels(failed) == [["🔁 Try again"]]
    texts = "\n".join(m.text for m in ig_world.telegram.messages(ANNA.id))
    assert PATH_QUESTION not in texts and "Step 1 of 2" not in texts


async def test_a_way_closed_while_the_question_waits(ig_world: World) -> None:
    """An admin restricts the brand after the question was shown: the answer leads to the way
    that is open, and says so."""
    await _opened(ig_world)
    await _execute(ig_world, "UPDATE brand SET login_paths = 'facebook'")
    before = len(ig_world.telegram.callback_answers)
    check = await ig_world.answer(ANNA, "I don't know")
    assert _toasts(ig_world, before) == [
        "The brand does not offer this way right now. Here is how you can go on:"
    ]
    assert check.text.startswith(FB_CHECK)
    assert await _invitation(ig_world) == ("page_public", "facebook", "opened")


# --- a failed Facebook login: Instagram Login instead ------------------------------------------


async def test_a_failed_facebook_login_offers_instagram_login(ig_world: World) -> None:
    failed = await _failed_facebook_login(ig_world)
    assert "connect @anna.bakes with Instagram Login instead" in failed.text
    assert _labels(failed) == [["🔁 Try again"], ["📸 Connect with Instagram instead"]]
    assert await ig_world.rows("SELECT path FROM login_attempt") == [("facebook",)]

    before = len(ig_world.telegram.callback_answers)
    ig_world.telegram.press(ANNA, failed, "Connect with Instagram instead")
    ig_world.telegram.press(ANNA, failed, "Connect with Instagram instead")  # a double tap
    await ig_world.settle()
    check = ig_world.telegram.last_message(ANNA.id)
    assert _heads([check]) == [
        "Let's connect @anna.bakes with Instagram Login instead: no Facebook Page needed."
    ]
    assert IG_CHECK in check.text
    assert sum(IG_CHECK in m.text for m in ig_world.telegram.messages(ANNA.id)) == 1
    assert _toasts(ig_world, before) == [
        None,
        "Already switched to Instagram Login. The next step is further down.",
    ]
    assert ig_world.telegram.messages(ANNA.id)[-2].buttons == []  # the failure's buttons, off
    assert await _invitation(ig_world) == ("ig_professional", "instagram", "opened")

    await ig_world.answer(ANNA, "Yes")
    rows = await ig_world.rows("SELECT path, used_at IS NULL FROM login_attempt ORDER BY id")
    assert rows == [("facebook", False), ("instagram", True)]
    window = await ig_world.dialog_url(ANNA)
    assert window.startswith(f"{ig_world.instagram.base_url}/oauth/authorize?")
    details = [d for (k, d) in await ig_world.rows("SELECT kind, detail FROM invitation_event")]
    assert "login:instagram" in details


async def test_instagram_instead_where_the_brand_closed_it_meanwhile(ig_world: World) -> None:
    failed = await _failed_facebook_login(ig_world)
    await _execute(ig_world, "UPDATE brand SET login_paths = 'facebook'")
    before = len(ig_world.telegram.callback_answers)
    ig_world.telegram.press(ANNA, failed, "Connect with Instagram instead")
    await ig_world.settle()
    assert _toasts(ig_world, before) == [NOT_OPEN_INSTAGRAM]
    assert await _invitation(ig_world) == ("login", "facebook", "failed")
    # "Try again" (the Facebook path) is still there and works.
    ig_world.telegram.press(ANNA, failed, "Try again")
    await ig_world.settle()
    assert ig_world.telegram.last_message(ANNA.id).text.startswith("Step 3 of 3")


async def test_instagram_instead_after_a_new_login_link_is_an_old_button(ig_world: World) -> None:
    failed = await _failed_facebook_login(ig_world)
    [(invitation_id,)] = await ig_world.rows("SELECT id FROM invitation")
    ig_world.telegram.press(ANNA, failed, "Try again")
    await ig_world.settle()
    before = len(ig_world.telegram.callback_answers)
    ig_world.telegram.press_data(
        ANNA, failed.message_id, Press(Action.SWITCH, int(str(invitation_id)), Step.LOGIN).pack()
    )
    await ig_world.settle()
    assert _toasts(ig_world, before) == [
        "That step is already behind you. Here is where you are now."
    ]
    assert await _invitation(ig_world) == ("login", "facebook", "login_started")
    assert ig_world.telegram.last_message(ANNA.id).text.startswith("Step 3 of 3")


# --- double taps, old buttons, pausing, typed text ---------------------------------------------


async def test_double_taps_and_old_buttons_change_nothing(ig_world: World) -> None:
    question = await _opened(ig_world)
    before = len(ig_world.telegram.callback_answers)
    sent = len(ig_world.telegram.messages(ANNA.id))
    ig_world.telegram.press(ANNA, question, "❌ No")
    ig_world.telegram.press(ANNA, question, "Yes, it is")  # the other answer, too late
    await ig_world.settle()
    new = ig_world.telegram.messages(ANNA.id)[sent:]
    assert len(new) == 1 and IG_CHECK in new[0].text
    assert _toasts(ig_world, before) == [None, "Already answered. The next step is further down."]
    assert await _invitation(ig_world) == ("ig_professional", "instagram", "opened")

    # The Facebook path taken from Instagram's check: that check's buttons are old now.
    await ig_world.answer(ANNA, "❌ No")
    fix = ig_world.telegram.last_message(ANNA.id)
    [(invitation_id,)] = await ig_world.rows("SELECT id FROM invitation")
    await ig_world.answer(ANNA, "Use a Facebook Page instead")
    before = len(ig_world.telegram.callback_answers)
    done = Press(Action.DONE, int(str(invitation_id)), Step.IG_PROFESSIONAL).pack()
    ig_world.telegram.press_data(ANNA, fix.message_id, done)
    await ig_world.settle()
    assert _toasts(ig_world, before) == ["Already answered. The next step is further down."]
    assert await _invitation(ig_world) == ("page_public", "facebook", "opened")
    assert await ig_world.rows("SELECT count(*) FROM login_attempt") == [(0,)]


async def test_cancel_continue_and_typed_text_know_the_new_steps(ig_world: World) -> None:
    await _opened(ig_world)
    brief = await ig_world.say(ANNA, "hello?")
    assert [m.text for m in brief] == [
        "Please use the buttons above: I don't understand typed messages. "
        "Questions? Ask Maria, who invited you."
    ]
    await ig_world.say(ANNA, "/cancel")
    again = await ig_world.answer(ANNA, "Continue")
    assert again.text.startswith(PATH_QUESTION)

    await ig_world.answer(ANNA, "I don't know")
    brief = await ig_world.say(ANNA, "and now?")
    assert [m.text for m in brief] == [
        "Please use the buttons of step 1 of 2 above: I don't understand typed messages. "
        "Questions? Ask Maria, who invited you."
    ]
    await ig_world.say(ANNA, "/cancel")
    again = await ig_world.answer(ANNA, "Continue")
    assert again.text.startswith(IG_CHECK)
    await ig_world.answer(ANNA, "Yes")
    brief = await ig_world.say(ANNA, "done?")
    assert "step 2 of 2" in brief[0].text


async def test_german(ig_world: World) -> None:
    question = await _opened(ig_world, BEN, handle="ben.cooks")
    welcome = ig_world.telegram.messages(BEN.id)[-2]
    assert "1. Eine Frage zu deinem Konto" in welcome.text
    assert question.text.startswith(
        "Ist @ben.cooks mit einer Facebook-Seite verknüpft, die du verwaltest?"
    )
    assert _labels(question) == [["✅ Ja", "❌ Nein"], ["🤷 Weiß ich nicht"]]
    check = await ig_world.answer(BEN, "Weiß ich nicht")
    assert check.text.startswith("Kein Problem: Dann geht es mit Instagram-Login am schnellsten")
    assert "Schritt 1 von 2 · Ist @ben.cooks ein professionelles Konto?" in check.text
    fix = await ig_world.answer(BEN, "❌ Nein")
    assert fix.text.startswith("So wechselst du zu einem professionellen Konto")
    assert _labels(fix) == [["✅ Erledigt"], ["📄 Doch über eine Facebook-Seite"]]


async def test_anna_connects_on_the_facebook_path_as_before(ig_world: World) -> None:
    """The Facebook path chosen at the question still connects, through the Page."""
    await _opened(ig_world)
    await ig_world.answer(ANNA, "Yes, it is")
    await ig_world.answer(ANNA, "Yes")
    await ig_world.answer(ANNA, "Yes")
    await ig_world.facebook_login(ANNA, anna_on_facebook())
    await ig_world.telegram.wait_for(ANNA.id, "Connected!")
    assert await _invitation(ig_world) == ("done", "facebook", "connected")
