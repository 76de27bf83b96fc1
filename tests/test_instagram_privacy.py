"""/forget, /revoke and /shared for an Instagram Login connection (issue 13, QA findings), end to
end through the stand-ins on SQLite and PostgreSQL: Instagram Login has no call to revoke an app's
grant, so nothing goes to Facebook's DELETE /me/permissions and no `Revocation` is queued; the
kept Instagram token is simply deleted, and the texts say so (and point to Instagram's settings,
not Facebook's)."""

from __future__ import annotations

from sandbox.instagram import IgPerson
from sandbox.telegram import TgUser
from tests.world import ANNA, MANAGER, World

IG_ANNA = IgPerson("anna.bakes", name="Anna Bakes", followers_count=12345, media_count=310)
INSTAGRAM_STEPS = "Settings and activity → <b>Website permissions</b> → Apps and websites → Active"
INSTAGRAM_STEPS_PLAIN = "Settings and activity → Website permissions → Apps and websites → Active"
INSTAGRAM_STEPS_DE = (
    "Einstellungen und Aktivität → <b>Website-Berechtigungen</b> → Apps und Websites"
)


async def _connect(world: World, user: TgUser = ANNA) -> None:
    await world.connect_with_instagram(user, IG_ANNA)
    assert await world.rows("SELECT path FROM connection") == [("instagram",)]
    [(sealed,)] = await world.rows("SELECT token_encrypted FROM connection")
    assert sealed


def _nothing_sent_to_facebook(world: World) -> None:
    revokes = [
        (method, path)
        for method, path, _ in world.graph.requests
        if method == "DELETE" and path.endswith("/permissions")
    ]
    assert revokes == []
    assert world.graph.revoked == []


async def test_forget_deletes_the_instagram_login_without_asking_facebook(ig_world: World) -> None:
    world = ig_world
    await _connect(world)
    world.telegram.send_text(ANNA, "/forget")
    await world.settle()
    ask = world.telegram.last_message(ANNA.id)
    assert "Should I forget you?" in ask.text and "@anna.bakes" in ask.text
    assert "the Instagram login I kept" in ask.text
    assert INSTAGRAM_STEPS in ask.html
    assert "Facebook" not in ask.text

    world.telegram.press(ANNA, ask, "Yes, forget me")
    await world.settle()
    done = world.telegram.last_message(ANNA.id).text
    assert "your connection data and the Instagram login I kept are deleted" in done
    assert INSTAGRAM_STEPS in world.telegram.last_message(ANNA.id).html and "Remove" in done
    assert "Facebook" not in done
    await world.telegram.wait_for(MANAGER.id, "@anna.bakes asked me to forget them")

    _nothing_sent_to_facebook(world)
    assert await world.rows("SELECT COUNT(*) FROM revocation") == [(0,)]
    assert await world.rows("SELECT COUNT(*) FROM connection") == [(0,)]


async def test_forget_in_german_points_to_instagram(ig_world: World) -> None:
    world = ig_world
    anna_de = TgUser(id=ANNA.id, first_name=ANNA.first_name, language_code="de")
    await _connect(world, anna_de)
    world.telegram.send_text(anna_de, "/forget")
    await world.settle()
    ask = world.telegram.last_message(ANNA.id)
    assert "Instagram-Login" in ask.text and INSTAGRAM_STEPS_DE in ask.html
    assert "Facebook" not in ask.text
    world.telegram.press(anna_de, ask, "Ja, vergiss mich")
    await world.settle()
    done = world.telegram.last_message(ANNA.id).text
    assert "Instagram-Login" in done and "Website-Berechtigungen" in done and "Entfernen" in done
    assert "Facebook" not in done
    _nothing_sent_to_facebook(world)
    assert await world.rows("SELECT COUNT(*) FROM connection") == [(0,)]


async def test_revoke_removes_the_instagram_login_without_asking_facebook(
    ig_world: World,
) -> None:
    world = ig_world
    await _connect(world)
    [question] = await world.say(MANAGER, "/revoke @anna.bakes")
    world.telegram.press(MANAGER, question, "Withdraw")
    await world.settle()
    done = [m for m in world.telegram.messages(MANAGER.id) if "⛔ Invitation #1" in m.text]
    assert len(done) == 1
    assert "@anna.bakes's connection is removed" in done[0].text
    assert "Instagram login" in done[0].text
    assert "Facebook" not in done[0].text
    told = await world.telegram.wait_for(ANNA.id, "was withdrawn by the brand")
    assert "Facebook" not in told.text

    _nothing_sent_to_facebook(world)
    assert await world.rows("SELECT COUNT(*) FROM revocation") == [(0,)]
    assert await world.rows("SELECT status, token_encrypted FROM connection") == [("revoked", None)]


async def test_shared_points_to_instagrams_settings(ig_world: World) -> None:
    world = ig_world
    await _connect(world)
    shown = (await world.say(ANNA, "/shared"))[-1].text
    assert "/forget ends your connections here" in shown
    assert f"remove the app in Instagram: {INSTAGRAM_STEPS_PLAIN}" in shown
    assert "Facebook" not in shown
