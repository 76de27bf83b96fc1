"""The influencer's conversation, end to end on SQLite and PostgreSQL: free text gets one short
line (the whole step again only now and then), a double tap moves on once, /language re-shows the
step in the new language, /start after connecting says so."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from bot.handlers.influencer import REPEAT_STEP_AFTER
from bot.models import Invitation
from sandbox.facebook import Consent, FbPage, FbUser, IgAccount
from sandbox.telegram import SentMessage
from tests.world import ANNA, BEN, MANAGER, World, anna_on_facebook


async def _say(world: World, user_id: int, text: str) -> list[SentMessage]:
    """What the bot answered to one typed message."""
    before = len(world.telegram.messages(user_id))
    user = ANNA if user_id == ANNA.id else BEN
    world.telegram.send_text(user, text)
    await world.settle()
    return world.telegram.messages(user_id)[before:]


async def _step_left_alone(world: World, minutes: float) -> None:
    """As if the step had been reached (and last repeated) `minutes` ago."""
    async with world.db.session() as s:
        [invite] = (await s.exec(select(Invitation))).all()
        invite.updated_at -= timedelta(minutes=minutes)
        if invite.step_repeated_at is not None:
            invite.step_repeated_at -= timedelta(minutes=minutes)
        s.add(invite)
        await s.commit()


def _assert_brief(answer: list[SentMessage], step: int) -> None:
    [line] = answer
    assert "\n" not in line.text and len(line.text) <= 200, line.text
    assert line.buttons == []
    assert f"step {step} of 3" in line.text and "use the buttons" in line.text
    assert "Maria" in line.text  # who to ask


async def test_free_text_gets_one_short_line_at_every_step(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    _assert_brief(await _say(world, ANNA.id, "hello?"), step=1)
    # The same line right again is not repeated (issue 9, walk #10; tests/test_walk_influencer.py).
    assert await _say(world, ANNA.id, "what do I do") == []

    await world.answer(ANNA, "Yes")
    _assert_brief(await _say(world, ANNA.id, "my page is public, I think"), step=2)

    login = await world.answer(ANNA, "Yes")
    assert "Step 3 of 3" in login.text
    _assert_brief(await _say(world, ANNA.id, "ok"), step=3)
    for text in ("I clicked it", "hello??"):
        assert await _say(world, ANNA.id, text) == []  # the same line, right above
    # The login message is still the only one with a login button.
    assert sum(1 for m in world.telegram.messages(ANNA.id) if "Step 3 of 3" in m.text) == 1


async def test_the_whole_step_again_at_most_every_ten_minutes(world: World) -> None:
    assert timedelta(minutes=10) == REPEAT_STEP_AFTER
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    await world.answer(ANNA, "Yes")

    # Ten minutes and more after step 2 appeared, a message gets the step once more in full ...
    await _step_left_alone(world, minutes=11)
    lead, step = await _say(world, ANNA.id, "still there?")
    assert "Maria" in lead.text and "\n" not in lead.text
    assert "Step 2 of 3" in step.text
    assert [b["text"] for b in step.buttons[0]] == ["✅ Yes", "❌ No"]
    [(repeated,)] = await world.rows("SELECT step_repeated_at FROM invitation")
    assert repeated is not None

    # ... and the following messages get the short line again, until ten more minutes pass.
    _assert_brief(await _say(world, ANNA.id, "hello?"), step=2)
    await _step_left_alone(world, minutes=9)
    assert await _say(world, ANNA.id, "hello??") == []  # the same line, right above
    await _step_left_alone(world, minutes=2)
    again = await _say(world, ANNA.id, "hello???")
    assert len(again) == 2 and "Step 2 of 3" in again[1].text

    # A repeat is no progress: no event, and `updated_at` (read by the stall report) stays.
    kinds = [k for (k,) in await world.rows("SELECT kind FROM invitation_event ORDER BY id")]
    assert kinds == ["created", "opened", "check_passed"]


async def test_a_double_tap_moves_on_once(world: World) -> None:
    token = await world.invite("anna.bakes")
    question = await world.open_link(ANNA, token)
    before = len(world.telegram.messages(ANNA.id))
    answers = len(world.telegram.callback_answers)

    # Two taps on "Yes" before the bot has answered the first.
    world.telegram.press(ANNA, question, "Yes")
    world.telegram.press(ANNA, question, "Yes")
    await world.settle()

    new = world.telegram.messages(ANNA.id)[before:]
    assert [m.text.splitlines()[0] for m in new] == [
        "Step 2 of 3 · Is the Page linked to @anna.bakes?"
    ]
    toasts = [a.get("text") for a in world.telegram.callback_answers[answers:]]
    assert toasts == [None, "Already answered. The next step is further down."]
    assert world.telegram.messages(ANNA.id)[before - 1].buttons == []  # the tapped question

    # The same at step 2: one login message, one login attempt.
    step2 = new[0]
    world.telegram.press(ANNA, step2, "Yes")
    world.telegram.press(ANNA, step2, "Yes")
    await world.settle()
    newer = world.telegram.messages(ANNA.id)[before + 1 :]
    assert [m.text.splitlines()[0] for m in newer] == ["Step 3 of 3 · Log in with Facebook"]
    assert await world.rows("SELECT count(*) FROM login_attempt") == [(1,)]
    kinds = [k for (k,) in await world.rows("SELECT kind FROM invitation_event ORDER BY id")]
    assert kinds.count("check_passed") == 2


async def test_three_fast_taps_on_new_login_link_send_one_login(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    login = world.telegram.messages(ANNA.id)[-1]
    assert login.text.startswith("Step 3 of 3 · Log in with Facebook")
    # Right after it arrived, "New login link" on it is a deliberate new link.
    world.telegram.press(ANNA, login, "New login link")
    await world.settle()
    second = world.telegram.messages(ANNA.id)[-1]
    assert second.message_id != login.message_id and second.button("Log in with Facebook")
    assert await world.rows("SELECT count(*) FROM login_attempt") == [(2,)]

    # Three taps on that message before the bot answered the first: one new login button.
    before = len(world.telegram.messages(ANNA.id))
    answers = len(world.telegram.callback_answers)
    for _ in range(3):
        world.telegram.press(ANNA, second, "New login link")
    await world.settle()
    new = world.telegram.messages(ANNA.id)[before:]
    assert [m.text.splitlines()[0] for m in new] == ["Step 3 of 3 · Log in with Facebook"]
    toasts = [a.get("text") for a in world.telegram.callback_answers[answers:]]
    on_its_way = "Your login button is on its way: it appears right below."
    assert toasts == [None, on_its_way, on_its_way]
    assert await world.rows("SELECT count(*) FROM login_attempt") == [(3,)]
    live = await world.rows(
        "SELECT count(*) FROM login_attempt WHERE used_at IS NULL AND superseded_at IS NULL"
    )
    assert live == [(1,)]
    # Only the newest message carries the login button; its link is the live state.
    assert [m.message_id for m in world.telegram.messages(ANNA.id) if m.buttons][-1:] == [
        new[0].message_id
    ]
    assert world.telegram.messages(ANNA.id)[before - 1].buttons == []


async def test_language_in_the_middle_shows_the_step_in_the_new_language(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    await world.answer(ANNA, "Yes")

    world.telegram.send_text(ANNA, "/language")
    await world.settle()
    before = len(world.telegram.messages(ANNA.id))
    await world.answer(ANNA, "Deutsch")
    done, step = world.telegram.messages(ANNA.id)[before:]
    assert "ich spreche ab jetzt Deutsch" in done.text
    assert step.text.startswith("Schritt 2 von 3 · Ist die Seite mit @anna.bakes verknüpft?")
    assert [b["text"] for b in step.buttons[0]] == ["✅ Ja", "❌ Nein"]

    # The German buttons work: on to the login, in German.
    login = await world.answer(ANNA, "Ja")
    assert login.text.startswith("Schritt 3 von 3")


async def test_start_when_connected_says_so(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Connected!")

    for command in ("/start", f"/start {token}"):
        [answer] = await _say(world, ANNA.id, command)
        assert "already connected" in answer.text, command
        assert "Welcome back" not in answer.text and "continue" not in answer.text

    # In the middle of the flow /start still picks up where the person was.
    ben_token = await world.invite("ben.cooks")
    world.telegram.send_text(BEN, f"/start {ben_token}")
    await world.settle()
    resumed = await _say(world, BEN.id, "/start")
    assert "Willkommen zurück" in resumed[0].text and "Schritt 1 von 3" in resumed[1].text


async def test_login_step_says_how_long_the_button_works(world: World) -> None:
    token = await world.invite("anna.bakes")
    login = await world.through_checks(ANNA, token)
    assert "The login button is valid for 30 minutes." in login.text
    assert "As soon as you have logged in, I tell you here whether it worked." in login.text

    ben_token = await world.invite("ben.cooks")
    german = await world.through_checks(BEN, ben_token)
    assert "Der Anmelde-Button ist 30 Minuten lang gültig." in german.text
    assert "Sobald du dich angemeldet hast, sage ich dir hier" in german.text


async def test_one_declined_permission_or_several(world: World) -> None:
    """Singular for one declined permission, plural for two, for the influencer (in English and
    German) and in the manager's notice."""
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(
        ANNA, anna_on_facebook(), Consent(declined={"instagram_manage_insights"})
    )
    one = await world.telegram.wait_for(ANNA.id, "Not connected yet")
    assert "One permission was not granted:" in one.text
    assert "exactly this permission again. Please switch it on" in one.text
    news = await world.telegram.wait_for(MANAGER.id, "a permission was declined")
    assert "read their Instagram insights" in news.text

    await world.answer(ANNA, "Try again")
    two = {"instagram_manage_insights", "pages_read_engagement"}
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(declined=two))
    several = await world.telegram.wait_for(ANNA.id, "These permissions were not granted:")
    assert "exactly these permissions again. Please switch all of them on" in several.text

    ben_token = await world.invite("ben.cooks")
    await world.through_checks(BEN, ben_token)
    ben = FbUser(
        id="fb-ben",
        name="Ben",
        pages=[FbPage(id="p-9", name="Ben Kocht", instagram=IgAccount("ig-9", "ben.cooks", 2500))],
    )
    await world.facebook_login(BEN, ben, Consent(declined=two))
    mehrere = await world.telegram.wait_for(BEN.id, "Diese Berechtigungen wurden nicht erteilt:")
    assert "genau diese Berechtigungen noch einmal ab. Bitte schalte alle ein" in mehrere.text
    # The manager hears of a repeated failure only once: Ben's first one has two permissions.
    news = await world.telegram.wait_for(MANAGER.id, "@ben.cooks tried to connect")
    assert "permissions were declined, so the platform may not:" in news.text
    await world.answer(BEN, "Erneut versuchen")
    await world.facebook_login(BEN, ben, Consent(declined={"pages_read_engagement"}))
    eine = await world.telegram.wait_for(BEN.id, "Eine Berechtigung wurde nicht erteilt:")
    assert "genau diese Berechtigung noch einmal ab. Bitte schalte sie ein" in eine.text


async def test_a_press_answered_too_late_still_moves_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram refuses a button answer after about 15 seconds ("query is too old"). A busy
    bot that answers late must still do what the press asked: the next step arrives, and the
    person never reads "something went wrong"."""
    import sandbox.telegram.standin as standin

    token = await world.invite("@anna.bakes")
    await world.open_link(ANNA, token)
    monkeypatch.setattr(standin, "_CALLBACK_ANSWER_SECONDS", -1.0)  # every answer is too late
    step2 = await world.answer(ANNA, "Yes")
    assert "2 of 3" in step2.text or "2/3" in step2.text, step2.text
    login = await world.answer(ANNA, "Yes")
    assert any("oauth/start" in b.get("url", "") for row in login.buttons for b in row)
    everything = " ".join(m.text for m in world.telegram.messages(ANNA.id))
    assert "went wrong" not in everything
    assert len(world.telegram.callback_answers) >= 2  # the bot tried; Telegram refused
