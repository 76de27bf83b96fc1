"""Defects of the first user walk (issue 9), the influencer's side, end to end on SQLite and
PostgreSQL: a declined permission is re-requested until connected (3), a re-shown step or login
leaves only the newest copy with buttons (5), a double tap on "forget me" is only acknowledged (8),
a flood is answered in order without repeating itself (10), typed text while paused points at
Continue (11), the chosen language reaches the "/" menu and the login pages (12)."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

from bot.handlers.registry import INFLUENCER_COMMANDS
from bot.i18n import Texts
from sandbox.facebook import Consent
from sandbox.telegram import SentMessage
from tests.world import ANNA, MANAGER, World, anna_on_facebook

_DECLINED = Consent(declined={"instagram_basic"})


def _now(world: World, message: SentMessage) -> SentMessage:
    """The message as it is now (edits applied)."""
    return next(
        m for m in world.telegram.messages(message.chat_id) if m.message_id == message.message_id
    )


async def _buttons_off(world: World, message: SentMessage) -> list[object]:
    """The message's buttons once the delivery worker has taken them off (an edit paced behind
    the chat's newer messages), or as they are after 10 s."""
    for _ in range(200):
        if not _now(world, message).buttons:
            break
        await asyncio.sleep(0.05)
    return list(_now(world, message).buttons)


async def _count(world: World, user_id: int, text: str, n: int) -> list[SentMessage]:
    """Waits until `n` messages of the chat contain `text`; returns them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        found = [m for m in world.telegram.messages(user_id) if text in m.text]
        if len(found) >= n or loop.time() > deadline:
            assert len(found) == n, [m.text for m in found]
            return found
        await asyncio.sleep(0.05)


async def _say(world: World, text: str) -> list[SentMessage]:
    before = len(world.telegram.messages(ANNA.id))
    world.telegram.send_text(ANNA, text)
    await world.settle()
    return world.telegram.messages(ANNA.id)[before:]


# --- 3: once declined, every later login re-requests until connected ---------------------------


async def test_a_declined_permission_is_rerequested_after_a_cancel_too(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook(), _DECLINED)
    await _count(world, ANNA.id, "Not connected yet", 1)

    await world.answer(ANNA, "Try again")
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(cancel=True))
    await _count(world, ANNA.id, "Not connected yet", 2)

    await world.answer(ANNA, "Try again")
    # The last result was a Cancel, but a permission was declined before: Facebook must ask again.
    params = parse_qs(urlsplit(await world.dialog_url(ANNA)).query)
    assert params.get("auth_type") == ["rerequest"]
    await world.facebook_login(ANNA, anna_on_facebook(), Consent())
    await world.telegram.wait_for(ANNA.id, "Connected!")
    rows = await world.rows("SELECT rerequest, outcome FROM login_attempt ORDER BY id")
    assert [(bool(r), o) for r, o in rows] == [
        (False, "permissions_declined"),
        (True, "cancelled"),
        (True, "connected"),
    ]


# --- 5: only the newest copy of a step or login keeps its buttons --------------------------------


async def test_try_again_takes_the_buttons_off_the_earlier_login(world: World) -> None:
    token = await world.invite("anna.bakes")
    first = await world.through_checks(ANNA, token)
    assert any("Log in" in b["text"] for row in first.buttons for b in row)
    await world.facebook_login(ANNA, anna_on_facebook(), _DECLINED)
    await _count(world, ANNA.id, "Not connected yet", 1)

    second = await world.answer(ANNA, "Try again")
    assert "Step 3 of 3" in second.text and second.message_id != first.message_id
    # The used login's message: no live buttons (taken off since the failure came back).
    assert await _buttons_off(world, first) == []
    labels = [b["text"] for row in _now(world, second).buttons for b in row]
    assert any("Log in" in label for label in labels)
    live = [m for m in world.telegram.messages(ANNA.id) if m.buttons]
    assert [m.message_id for m in live] == [second.message_id]

    await world.facebook_login(ANNA, anna_on_facebook(), _DECLINED)
    await _count(world, ANNA.id, "Not connected yet", 2)
    third = await world.answer(ANNA, "Try again")
    assert await _buttons_off(world, second) == []
    live = [m for m in world.telegram.messages(ANNA.id) if m.buttons]
    assert [m.message_id for m in live] == [third.message_id]


async def test_connecting_takes_the_buttons_off_every_login_message(world: World) -> None:
    """After "Connected!" no login button is left live above it (the second walk found the
    step-3 message still offering "Log in" and "New login link")."""
    token = await world.invite("anna.bakes")
    first = await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook(), _DECLINED)
    await _count(world, ANNA.id, "Not connected yet", 1)
    second = await world.answer(ANNA, "Try again")
    assert _now(world, second).buttons
    await world.facebook_login(ANNA, anna_on_facebook())
    assert await _buttons_off(world, second) == []
    assert await _buttons_off(world, first) == []
    messages = world.telegram.messages(ANNA.id)
    assert "connected" in messages[-1].text.lower()
    live = [
        m.message_id
        for m in messages
        if any("url" in b or "Log in" in b["text"] for row in m.buttons for b in row)
    ]
    assert live == []


async def test_a_step_shown_again_in_another_language_leaves_one_set_of_buttons(
    world: World,
) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    english = await world.answer(ANNA, "Yes")
    assert "Step 2 of 3" in english.text and english.buttons

    await _say(world, "/language")
    await world.answer(ANNA, "Deutsch")
    german = world.telegram.last_message(ANNA.id)
    assert german.text.startswith("Schritt 2 von 3")
    assert any("Ja" in b["text"] for row in german.buttons for b in row)
    assert _now(world, english).buttons == []  # the English copy's Yes/No are gone
    live = [m for m in world.telegram.messages(ANNA.id) if m.buttons]
    assert [m.message_id for m in live] == [german.message_id]

    # Instructions ("No") carry the step's Done button: a re-shown step takes that off too.
    how = await world.answer(ANNA, "Nein")
    assert how.buttons
    await _say(world, "/language")
    await world.answer(ANNA, "English")
    again = world.telegram.last_message(ANNA.id)
    assert "Step 2 of 3" in again.text
    assert _now(world, how).buttons == []
    assert [m.message_id for m in world.telegram.messages(ANNA.id) if m.buttons] == [
        again.message_id
    ]
    await world.answer(ANNA, "Yes")  # the newest copy still works
    assert "Step 3 of 3" in world.telegram.last_message(ANNA.id).text


# --- 8: "forget me" tapped twice ---------------------------------------------------------------


async def test_forget_tapped_twice_is_done_once_and_only_acknowledged_again(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Connected!")

    [question] = await _say(world, "/forget")
    world.telegram.press(ANNA, question, "forget")
    world.telegram.press(ANNA, question, "forget")  # a double tap: both before any answer
    await world.settle()

    after = [m.text for m in world.telegram.messages(ANNA.id)[-3:]]
    assert sum("Done: your connection data is deleted" in t for t in after) == 1, after
    assert not any("nothing to forget" in m.text for m in world.telegram.messages(ANNA.id))
    toasts = [c.get("text") for c in world.telegram.calls("answerCallbackQuery")]
    assert Texts("en").plain("privacy.forget_again") in toasts
    [(status,)] = await world.rows("SELECT status FROM invitation")
    assert status == "revoked"
    assert await world.rows("SELECT id FROM connection") == []


# --- 10: a flood is answered in order, without repeating itself ---------------------------------


async def test_a_flood_gets_one_line_then_the_notice(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    before = len(world.telegram.messages(ANNA.id))
    for i in range(20):
        world.telegram.send_text(ANNA, f"hello {i}")
    # Ignored updates are never handled: wait for the notice, then a little longer.
    await world.telegram.wait_for(ANNA.id, "skipping some of your messages", timeout=10)
    await asyncio.sleep(1.0)
    texts = [m.text for m in world.telegram.messages(ANNA.id)[before:]]
    # The same brief line once (not eight times), and the notice after it, once.
    assert len(texts) == 2, texts
    assert "use the buttons of step 1 of 3" in texts[0]
    assert "skipping some of your messages" in texts[1]


async def test_a_managers_flood_is_answered_before_the_notice(world: World) -> None:
    await world.invite("anna.bakes")
    before = len(world.telegram.messages(MANAGER.id))
    for _ in range(12):
        world.telegram.send_text(MANAGER, "/list")
    await world.telegram.wait_for(MANAGER.id, "skipping some of your messages", timeout=30)
    await asyncio.sleep(1.0)
    texts = [m.text for m in world.telegram.messages(MANAGER.id)[before:]]
    notices = [i for i, t in enumerate(texts) if "skipping some of your messages" in t]
    assert notices == [len(texts) - 1], texts  # once, and last: after every list it answered
    # What was accepted (the burst, less the /invite before) was answered, each with its list.
    assert len(texts) - 1 >= world.settings.person_update_burst - 2
    assert all("1 invitation" in t for t in texts[:-1]), texts


async def test_the_same_line_is_sent_again_after_something_else(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    [line] = await _say(world, "hello")
    assert "step 1 of 3" in line.text
    assert await _say(world, "hello again") == []  # the same line, right above
    await world.answer(ANNA, "Yes")
    [line] = await _say(world, "and now?")
    assert "step 2 of 3" in line.text


# --- 11: typed text while paused points at Continue ---------------------------------------------


async def test_typed_text_while_paused_points_at_continue(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    [paused] = await _say(world, "/cancel")
    assert "Continue" in paused.text
    [line] = await _say(world, "ok")
    assert "Continue" in line.text and "step 1 of 3" not in line.text
    assert line.buttons == []

    resumed = await world.answer(ANNA, "Continue")
    assert "Step 1 of 3" in resumed.text
    [line] = await _say(world, "ok")
    assert "step 1 of 3" in line.text and "Continue" not in line.text

    # /start continues a paused setup as well.
    await _say(world, "/cancel")
    await _say(world, "/start")
    [line] = await _say(world, "ok")
    assert "step 1 of 3" in line.text


async def test_german_typed_text_while_paused(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    await _say(world, "/language")
    await world.answer(ANNA, "Deutsch")
    [line] = await _say(world, "hallo")
    assert "Bitte nutze die Buttons weiter oben (Schritt 1 von 3)" in line.text
    await _say(world, "/cancel")
    [line] = await _say(world, "ok")
    assert "Weiter" in line.text and "Schritt 1" not in line.text


# --- 12: the chosen language reaches the menu and the login pages -------------------------------


async def test_the_chosen_language_sets_the_chats_command_menu(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    scope = {"type": "chat", "chat_id": ANNA.id}
    assert world.telegram.commands_for(scope) == []  # the default menu, in her app's language
    await _say(world, "/language")
    await world.answer(ANNA, "Deutsch")
    menu = world.telegram.commands_for(scope)
    de = Texts("de")
    assert [c["command"] for c in menu] == list(INFLUENCER_COMMANDS)
    assert [c["description"] for c in menu] == [de.plain(f"menu.{c}") for c in INFLUENCER_COMMANDS]
    await _say(world, "/language")
    await world.answer(ANNA, "English")
    menu = world.telegram.commands_for(scope)
    assert menu[0]["description"] == Texts("en").plain(f"menu.{INFLUENCER_COMMANDS[0]}")


async def test_the_login_pages_follow_the_chosen_language(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    await _say(world, "/language")
    await world.answer(ANNA, "Deutsch")
    await world.answer(ANNA, "Ja")
    await world.answer(ANNA, "Ja")
    old = world.login_url(ANNA)
    await world.answer(ANNA, "Neuer Anmelde-Link")
    de = Texts("de")
    english_browser = {"Accept-Language": "en-US,en;q=0.9"}
    page = await world.browser.get(old, headers=english_browser)
    assert page.status_code == 410
    assert de.plain("web.state_superseded") in page.text
    assert 'lang="de"' in page.text

    await world.facebook_login(ANNA, anna_on_facebook(), _DECLINED)
    used = world.login_url(ANNA)
    page = await world.browser.get(used, headers=english_browser)
    assert de.plain("web.state_used") in page.text

    # A state that names nobody: the browser's language.
    page = await world.browser.get(
        f"{world.settings.public_url}/oauth/start?state={'x' * 43}", headers=english_browser
    )
    assert 'lang="en"' in page.text
