"""What the brand's manager reads about an invitation, end to end through the stand-ins on SQLite
and PostgreSQL: the /show timeline in full sentences, notices about the influencer (never to
them), one notice for a burst of failed attempts, the follower count, and the "other account"
verdict naming each Page with the account it is linked to."""

from __future__ import annotations

import asyncio
import re

from sandbox.facebook import Consent, FbUser, IgAccount
from sandbox.telegram import TgUser
from tests.world import ANNA, MANAGER, World, anna_on_facebook

# The same manager (Maria, the admin), with German as her Telegram language.
MARIA_DE = TgUser(id=MANAGER.id, first_name="Maria", username="maria_brand", language_code="de")
# Words that would speak to the influencer ("your insights", "deine Insights", "Ihre Seite").
_TO_THE_INFLUENCER = re.compile(r"\b(your|yours|dein\w*|ihr\w*)\b", re.IGNORECASE)


def _anna_with_two_other_accounts() -> FbUser:
    """Both of Anna's Pages with Instagram are linked, but not to @anna.bakes."""
    person = anna_on_facebook(instagram=IgAccount(id="ig-900", username="anna_old"))
    person.pages[0].instagram = IgAccount(id="ig-050", username="anna_shop")
    return person


async def _told_times(world: World, text: str, times: int) -> None:
    """Until Anna has been told `text` `times` times (results reach her through the outbox)."""
    async with asyncio.timeout(10):
        while sum(text in m.text for m in world.telegram.messages(ANNA.id)) < times:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def _retry(world: World) -> None:
    await world.answer(ANNA, "Try again")


async def test_show_tells_the_story_in_sentences(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)
    await world.answer(ANNA, "No")  # not public yet: instructions
    await world.answer(ANNA, "Done")
    await world.answer(ANNA, "How do I check")
    await world.answer(ANNA, "Yes")
    await world.facebook_login(
        ANNA, anna_on_facebook(), Consent(declined={"instagram_manage_insights"})
    )
    await world.telegram.wait_for(ANNA.id, "Not connected yet")
    await _retry(world)  # asks again for the declined permission
    await world.facebook_login(ANNA, anna_on_facebook(is_published=False))
    await world.telegram.wait_for(ANNA.id, "is not published")
    await _retry(world)
    await world.facebook_login(ANNA, _anna_with_two_other_accounts())
    await world.telegram.wait_for(ANNA.id, "other Instagram accounts")

    [shown] = await world.say(MANAGER, "/show @anna.bakes")
    text = shown.text
    for sentence in (
        "invitation for @anna.bakes created",
        "@anna.bakes opened the link",
        "@anna.bakes said their Page is not public yet and got instructions to publish it",
        "@anna.bakes published their Facebook Page, following my instructions",
        "@anna.bakes asked how to check that their Page is linked to the Instagram account",
        "@anna.bakes confirmed that their Page is linked to the Instagram account",
        "@anna.bakes got the Facebook login button",
        "the login did not work: a permission was declined, so the platform may not "
        "read their Instagram insights (reach, audience).",
        "@anna.bakes got a new Facebook login that asks again for the declined permissions",
        "the login did not work: their Page Anna Bakes is not published.",
        "the login did not work: their Pages are linked to other Instagram accounts, none of "
        "them to @anna.bakes: Anna's Old Shop → @anna_shop, Anna Bakes → @anna_old.",
        "3 logins did not work, the last: other Instagram account",  # the card on top
    ):
        assert sentence in text, (sentence, text)
    # Details are never lost, internal codes never shown.
    for code in ("page_public", "page_linked", ":yes", "rerequest", "login started", " .", ":\n"):
        assert code not in text, (code, text)
    assert not _TO_THE_INFLUENCER.search(text), text
    # Oldest first, as it happened.
    assert text.index("opened the link") < text.index("is not published") < text.index("→")


async def test_show_in_german_keeps_the_newest_events(database_url: str) -> None:
    from tests.world import close_world, make_world

    world = await make_world(database_url)
    try:
        token = await world.invite("anna.bakes", manager=MARIA_DE)
        await world.open_link(ANNA, token)
        await world.answer(ANNA, "How do I check")
        # A long history: many more questions asked (stored as the bot stores each one).
        for _ in range(60):
            await world.db.invitations.record_event(
                invitation_id=1, kind="check_answered", detail="page_public:how"
            )
        await world.answer(ANNA, "No")
        await world.answer(ANNA, "Done")
        await world.answer(ANNA, "Yes")
        await world.facebook_login(ANNA, anna_on_facebook(is_published=False))
        await world.telegram.wait_for(ANNA.id, "is not published")

        [shown] = await world.say(MARIA_DE, "/show @anna.bakes")
        text = shown.text
        assert len(shown.html) <= 4096
        # The newest events are kept; the oldest give way, and the reader is told so.
        failed = "die Anmeldung hat nicht geklappt: die Seite Anna Bakes ist nicht veröffentlicht."
        assert failed in text
        assert "@anna.bakes hat die Facebook-Seite nach meiner Anleitung veröffentlicht" in text
        assert re.search(r"… \d+ frühere Ereignisse nicht gezeigt", text), text
        assert "Einladung für @anna.bakes angelegt" not in text
        assert "page_public" not in text and ":\n" not in text
    finally:
        await close_world(world)


async def test_nine_quick_failures_send_one_notice(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    before = len(world.telegram.messages(MANAGER.id))
    tries = [
        Consent(cancel=True),
        Consent(declined={"instagram_basic"}),
        Consent(cancel=True),
        Consent(error="server_error"),
        Consent(pages=set()),
        Consent(cancel=True),
        Consent(declined={"pages_show_list"}),
        Consent(cancel=True),
        Consent(declined={"instagram_manage_insights"}),
    ]
    for number, consent in enumerate(tries, start=1):
        if number > 1:
            await _retry(world)
        await world.facebook_login(ANNA, anna_on_facebook(), consent)
        await _told_times(world, "Not connected yet", number)
    await world.telegram.wait_for(MANAGER.id, "tried to connect")
    card = await world.telegram.wait_for(MANAGER.id, "9 logins did not work")
    assert "the last: permissions declined" in card.text
    await asyncio.sleep(2)  # anything still gathering would have gone out by now
    news = world.telegram.messages(MANAGER.id)[before:]
    assert len(news) <= 2, [m.text for m in news]
    assert sum("tried to connect" in m.text for m in news) == 1
    # The influencer heard every result: each attempt needs its own answer.
    assert sum("Not connected yet" in m.text for m in world.telegram.messages(ANNA.id)) == 9
    # Each attempt is in the history all the same.
    assert await world.rows("SELECT count(*) FROM invitation_event WHERE kind = 'verdict'") == [
        (9,)
    ]


async def test_each_reason_says_what_happens_next(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(cancel=True))
    news = await world.telegram.wait_for(MANAGER.id, "tried to connect")
    assert "closed the Facebook window without finishing the login" in news.text
    assert "start again with one tap" in news.text
    assert "what to fix" not in news.text


async def test_facebook_unavailable_is_no_fix_for_the_influencer(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    world.graph.fail_next("/me/accounts", code=2, message="trouble", http_status=500)
    await world.facebook_login(ANNA, anna_on_facebook())
    news = await world.telegram.wait_for(MANAGER.id, "tried to connect")
    assert "Facebook was unavailable" in news.text
    assert "they can retry in a few minutes" in news.text
    assert "what to fix" not in news.text


async def test_app_not_live_names_the_operator(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(app_not_live=True))
    news = await world.telegram.wait_for(MANAGER.id, "tried to connect")
    assert "Neither you nor @anna.bakes can fix this" in news.text
    assert "Brandly's operator" in news.text and "forward this message" in news.text
    assert "needs your action" not in news.text and "what to fix" not in news.text


async def test_connected_notice_has_the_follower_count(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    news = await world.telegram.wait_for(MANAGER.id, "is connected")
    assert news.text == (
        "✅ @anna.bakes is connected: Instagram @anna.bakes (12,345 followers) "
        "via the Page Anna Bakes."
    )
    [shown] = await world.say(MANAGER, "/show 1")
    assert "✅ connected: Instagram @anna.bakes (12,345 followers) via the Page Anna Bakes" in (
        shown.text
    )


async def test_german_manager_reads_about_the_influencer(world: World) -> None:
    token = await world.invite("anna.bakes", manager=MARIA_DE)
    await world.through_checks(ANNA, token)
    await world.facebook_login(
        ANNA, anna_on_facebook(), Consent(declined={"instagram_manage_insights", "instagram_basic"})
    )
    told = await world.telegram.wait_for(ANNA.id, "Not connected yet")
    assert "read your Instagram insights" in told.text  # the influencer is spoken to
    news = await world.telegram.wait_for(MANAGER.id, "hat versucht, sich zu verbinden")
    assert "das Instagram-Profil und die Beiträge sehen" in news.text
    assert "die Instagram-Insights lesen (Reichweite, Zielgruppe)" in news.text
    assert not _TO_THE_INFLUENCER.search(news.text), news.text

    await _retry(world)
    await world.facebook_login(ANNA, anna_on_facebook())
    connected = await world.telegram.wait_for(MANAGER.id, "ist verbunden")
    assert "(12.345 Follower)" in connected.text


async def test_english_declined_alert_speaks_about_the_influencer(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(
        ANNA, anna_on_facebook(), Consent(declined={"instagram_manage_insights"})
    )
    news = await world.telegram.wait_for(MANAGER.id, "tried to connect")
    assert "read their Instagram insights (reach, audience)" in news.text
    assert "They have been told what to fix" in news.text
    assert not _TO_THE_INFLUENCER.search(news.text), news.text


async def test_other_account_names_each_page(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, _anna_with_two_other_accounts())
    told = await world.telegram.wait_for(ANNA.id, "Not connected yet")
    assert "none of them to @anna.bakes" in told.text
    assert "• Page Anna's Old Shop → @anna_shop" in told.text
    assert "• Page Anna Bakes → @anna_old" in told.text
    news = await world.telegram.wait_for(MANAGER.id, "tried to connect")
    assert "Anna's Old Shop → @anna_shop, Anna Bakes → @anna_old" in news.text

    # One Page linked elsewhere: that Page is named.
    await _retry(world)
    await world.facebook_login(
        ANNA, anna_on_facebook(instagram=IgAccount(id="ig-900", username="anna_old"))
    )
    again = await world.telegram.wait_for(ANNA.id, "Your Page Anna Bakes is linked")
    assert "a different Instagram account (@anna_old), not to @anna.bakes" in again.text


async def test_forget_erases_the_particulars_kept_for_the_timeline(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook(is_published=False))
    await _told_times(world, "Not connected yet", 1)
    await _retry(world)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(ANNA.id, "Connected!")
    facts = await world.rows("SELECT facts FROM invitation_event WHERE kind = 'verdict'")
    assert len(facts) == 2 and all("Anna Bakes" in str(f) for (f,) in facts)

    world.telegram.send_text(ANNA, "/forget")
    await world.settle()
    world.telegram.press(ANNA, world.telegram.last_message(ANNA.id), "Yes, forget me")
    await world.settle()
    assert await world.rows("SELECT facts FROM invitation_event WHERE facts IS NOT NULL") == []
    [shown] = await world.say(MANAGER, "/show @anna.bakes")
    assert "Anna Bakes" not in shown.text and "12,345" not in shown.text
    # The history itself stays, without the particulars.
    assert "the login did not work: Page not published" in shown.text
    assert "✅ connected" in shown.text
