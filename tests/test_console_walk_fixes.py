"""Small console defects a user walk found, end to end through the stand-ins on SQLite and
PostgreSQL: the /show timeline says "asks again for the declined permissions" only for a login
that does; the admins' commands name a missing brand, a brand without managers, the person
removed and a brand name already taken; /export says the statuses in the chat's words."""

from __future__ import annotations

import csv
import io
from urllib.parse import parse_qs, urlsplit

from sandbox.facebook import Consent, IgAccount
from sandbox.telegram import TgUser
from tests.world import ANNA, MANAGER, World, anna_on_facebook

OTTO = TgUser(id=5002, first_name="Otto", username="otto_brand", language_code="de")
MARIA_DE = TgUser(id=MANAGER.id, first_name="Maria", username="maria_brand", language_code="de")
ASKS_AGAIN = "asks again for the declined permissions"
NEW_LINK = "@anna.bakes got a new Facebook login link"


async def _show(world: World) -> str:
    [shown] = await world.say(MANAGER, "/show @anna.bakes")
    return shown.text


# --- 1: the timeline's new logins ------------------------------------------------------------


async def test_only_the_login_after_a_decline_asks_again(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(
        ANNA, anna_on_facebook(), Consent(declined={"instagram_manage_insights"})
    )
    await world.telegram.wait_for(ANNA.id, "Not connected yet")
    await world.answer(ANNA, "Try again")  # re-asks the declined permission
    other = anna_on_facebook(instagram=IgAccount(id="ig-900", username="anna_old"))
    await world.facebook_login(ANNA, other)
    await world.telegram.wait_for(ANNA.id, "different Instagram account")
    await world.answer(ANNA, "Try again")  # after a wrong account: just a new link
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(cancel=True))
    await world.telegram.wait_for(ANNA.id, "cancelled the Facebook login")
    await world.answer(ANNA, "Try again")  # after a cancel: just a new link

    text = await _show(world)
    assert text.count(ASKS_AGAIN) == 1, text
    assert text.count(NEW_LINK) == 2, text
    assert (
        text.index(ASKS_AGAIN)
        < text.index("another Instagram account (@anna_old)")
        < text.index(NEW_LINK)
    )
    assert "@anna.bakes got the Facebook login button" in text  # the first one


async def test_a_new_login_link_without_a_decline_is_a_new_link(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.answer(ANNA, "New login link")
    await world.facebook_login(ANNA, anna_on_facebook(is_published=False))
    await world.telegram.wait_for(ANNA.id, "is not published")
    await world.answer(ANNA, "Try again")

    text = await _show(world)
    assert ASKS_AGAIN not in text, text
    assert "@anna.bakes got the Facebook login button" in text
    # "New login link" right after the first is the same event; the retry is a new link.
    assert text.count(NEW_LINK) == 1, text


async def test_german_timeline_names_a_new_login_link(world: World) -> None:
    token = await world.invite("anna.bakes", manager=MARIA_DE)
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook(is_published=False))
    await world.telegram.wait_for(ANNA.id, "is not published")
    await world.answer(ANNA, "Try again")
    [shown] = await world.say(MARIA_DE, "/show @anna.bakes")
    assert "@anna.bakes hat einen neuen Link für die Facebook-Anmeldung bekommen" in shown.text
    assert "abgelehnten Berechtigungen" not in shown.text


# --- 2: the admins' commands -----------------------------------------------------------------


async def test_a_brand_number_that_is_no_brand_is_named(world: World) -> None:
    await world.invite("anna.bakes")  # Maria's first brand, #1
    for command in ("/manager_link 99", "/managers 99", "/manager_remove 99 5002"):
        [reply] = await world.say(MANAGER, command)
        assert "There is no brand #99." in reply.text, (command, reply.text)
        assert "/brands" in reply.text
    [reply] = await world.say(MANAGER, "/managers")
    assert "Name a brand by its number" in reply.text  # no number at all: how to name one
    [reply] = await world.say(MARIA_DE, "/manager_link #7")
    assert "Eine Marke #7 gibt es nicht." in reply.text


async def test_brand_without_managers_says_how_to_add_one(world: World) -> None:
    await world.invite("anna.bakes")
    await world.say(MANAGER, "/brand_new Glow Cosmetics")
    [listing] = await world.say(MANAGER, "/managers 2")
    assert "Glow Cosmetics has no managers yet" in listing.text, listing.text
    assert "/manager_link 2" in listing.text
    [listing] = await world.say(MARIA_DE, "/managers 2")
    assert "Glow Cosmetics hat noch keine Manager" in listing.text, listing.text


async def test_removing_a_manager_names_them(world: World) -> None:
    await world.invite("anna.bakes")
    await world.say(MANAGER, "/brand_new Glow Cosmetics")
    answer = await world.say(MANAGER, "/manager_link 2")
    link = next(w for w in answer[-1].text.split() if "t.me/" in w)
    await world.say(OTTO, f"/start {parse_qs(urlsplit(link).query)['start'][0]}")
    [removed] = await world.say(MANAGER, f"/manager_remove 2 {OTTO.id}")
    assert f"Removed Otto ({OTTO.id}) from the managers of Glow Cosmetics." in removed.text
    [again] = await world.say(MANAGER, f"/manager_remove 2 {OTTO.id}")
    assert f"{OTTO.id} is not a manager of Glow Cosmetics." in again.text


async def test_a_brand_name_taken_is_not_created_twice(world: World) -> None:
    await world.invite("anna.bakes")
    [created] = await world.say(MANAGER, "/brand_new Glow Cosmetics")
    assert "Brand Glow Cosmetics created (#2)" in created.text
    [again] = await world.say(MANAGER, "/brand_new  glow COSMETICS ")
    assert "Brand #2 is already called Glow Cosmetics" in again.text, again.text
    assert "created" not in again.text
    assert await world.rows("SELECT count(*) FROM brand") == [(2,)]


# --- 3: the export's statuses ----------------------------------------------------------------


async def _export(world: World, manager: TgUser) -> list[dict[str, str]]:
    reply = await world.say(manager, "/export")
    return list(csv.DictReader(io.StringIO((reply[-1].document_bytes or b"").decode())))


async def test_export_says_the_status_as_the_chat_does(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.invite("ben.cooks")
    await world.invite("carla.cooks")
    await world.revoke("@carla.cooks")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(MANAGER.id, "is connected")

    rows = await _export(world, MANAGER)
    assert [(r["handle"], r["status"], r["status_code"]) for r in rows] == [
        ("anna.bakes", "connected", "connected"),
        ("ben.cooks", "not opened", "pending"),
        ("carla.cooks", "withdrawn", "revoked"),
    ]
    rows = await _export(world, MARIA_DE)
    assert [(r["status"], r["status_code"]) for r in rows] == [
        ("verbunden", "connected"),
        ("nicht geöffnet", "pending"),
        ("zurückgezogen", "revoked"),
    ]
