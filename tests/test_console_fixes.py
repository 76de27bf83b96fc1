"""Issue 9, the manager console: revocations Facebook did not confirm are retried until it does
(point 3), re-inviting a connected handle is an explicit choice and /show picks the relevant
invitation (point 9), and the small ones of point 13 (rounding, the /list filters, huge ids)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.models import utcnow
from sandbox.facebook import FbPage, FbUser, IgAccount
from sandbox.telegram import TgUser
from tests.world import ANNA, MANAGER, World, anna_on_facebook

OTHER = TgUser(id=5002, first_name="Otto", username="otto_brand", language_code="de")
FACEBOOK_DOWN = {
    "code": 2,
    "message": "An unexpected error has occurred. Please retry your request later.",
}


async def _connect_anna(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(MANAGER.id, "is connected")


async def _make_retries_due(world: World) -> None:
    async with world.db.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE revocation SET next_try_at = :t"),
            {"t": utcnow() - timedelta(seconds=1)},
        )


async def _retry_job(world: World) -> object:
    """The periodic job as the leader runs it."""
    [job] = [j for j in world.bot.jobs.jobs if j.name == "retry_revocations"]
    return await job.run()


def _deletes(world: World) -> int:
    return sum(1 for method, path, _ in world.graph.requests if (method, path[-12:]) == _REVOKE)


_REVOKE = ("DELETE", "/permissions")


# --- point 3: a revocation Facebook did not confirm --------------------------------------------


async def test_unconfirmed_revocation_is_retried_until_facebook_confirms(world: World) -> None:
    await _connect_anna(world)
    [(sealed,)] = await world.rows("SELECT token_encrypted FROM connection")
    world.graph.fail_next("/me/permissions", count=2, **FACEBOOK_DOWN)  # type: ignore[arg-type]

    reply = await world.revoke("@anna.bakes")
    assert "Facebook has not confirmed yet" in reply[-1].text
    assert "I keep trying and tell you when it's done" in reply[-1].text
    await world.telegram.wait_for(ANNA.id, "was withdrawn by the brand")
    assert world.graph.revoked == []
    # The token left the connection but is kept, still encrypted, until Facebook confirms.
    assert await world.rows("SELECT status, token_encrypted FROM connection") == [("revoked", None)]
    [(kept, attempts, error)] = await world.rows(
        "SELECT token_encrypted, attempts, last_error FROM revocation"
    )
    assert kept == sealed and attempts == 1 and "code=2" in str(error)
    assert not any(str(kept).startswith(p) for p in ("EAA",))

    # The old answer said "try again later", and trying again said "done" and kept the token.
    again = await world.say(MANAGER, "/revoke 1")
    assert "still not confirmed" in again[-1].text and "I keep trying" in again[-1].text
    assert await world.rows("SELECT attempts FROM revocation") == [(2,)]

    assert await _retry_job(world) == 0  # not due yet: the next try backs off
    assert _deletes(world) == 2
    await _make_retries_due(world)
    assert await _retry_job(world) == 1
    assert world.graph.revoked == ["fb-anna"]
    assert await world.rows("SELECT count(*) FROM revocation") == [(0,)]
    notice = await world.telegram.wait_for(MANAGER.id, "Facebook confirmed")
    assert "@anna.bakes (#1)" in notice.text and "access token is deleted" in notice.text

    assert await _retry_job(world) == 0  # nothing left; nothing told twice
    done = await world.say(MANAGER, "/revoke 1")
    assert "already withdrawn" in done[-1].text
    assert _deletes(world) == 3
    assert sum("Facebook confirmed" in m.text for m in world.telegram.messages(MANAGER.id)) == 1


async def test_revoke_again_retries_at_once(world: World) -> None:
    await _connect_anna(world)
    world.graph.fail_next("/me/permissions", **FACEBOOK_DOWN)  # type: ignore[arg-type]
    first = await world.revoke("@anna.bakes")
    assert "has not confirmed yet" in first[-1].text
    again = await world.say(MANAGER, "/revoke #1")
    assert "Facebook has confirmed it now" in again[-1].text
    assert world.graph.revoked == ["fb-anna"]
    assert await world.rows("SELECT count(*) FROM revocation") == [(0,)]
    assert await world.rows("SELECT token_encrypted FROM connection") == [(None,)]


async def test_a_token_facebook_calls_invalid_counts_as_revoked(world: World) -> None:
    await _connect_anna(world)
    world.graph.fail_network("/me/permissions")
    first = await world.revoke("@anna.bakes")
    assert "has not confirmed yet" in first[-1].text
    world.graph.expire_tokens("fb-anna")  # Facebook now answers error 190
    await _make_retries_due(world)
    assert await _retry_job(world) == 1
    assert await world.rows("SELECT count(*) FROM revocation") == [(0,)]
    await world.telegram.wait_for(MANAGER.id, "Facebook confirmed")


async def test_a_token_left_behind_by_the_old_revoke_is_revoked_by_the_next(world: World) -> None:
    """Before the fix an unconfirmed revocation left the token on the withdrawn connection."""
    await _connect_anna(world)
    async with world.db.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE invitation SET status = 'revoked'"))
        await conn.execute(sa.text("UPDATE connection SET status = 'revoked'"))
    again = await world.say(MANAGER, "/revoke 1")
    assert "Facebook has confirmed it now" in again[-1].text
    assert world.graph.revoked == ["fb-anna"]
    assert await world.rows("SELECT token_encrypted FROM connection") == [(None,)]
    assert await world.rows("SELECT count(*) FROM revocation") == [(0,)]


async def test_forget_retries_an_unconfirmed_revocation_too(world: World) -> None:
    await _connect_anna(world)
    world.graph.fail_next("/me/permissions", **FACEBOOK_DOWN)  # type: ignore[arg-type]
    world.telegram.send_text(ANNA, "/forget")
    await world.settle()
    world.telegram.press(ANNA, world.telegram.last_message(ANNA.id), "Yes, forget me")
    await world.settle()
    assert "your connection data is deleted" in world.telegram.last_message(ANNA.id).text
    assert world.graph.revoked == []
    assert await world.rows("SELECT count(*) FROM connection") == [(0,)]
    assert await world.rows("SELECT attempts FROM revocation") == [(1,)]
    await _make_retries_due(world)
    assert await _retry_job(world) == 1
    assert world.graph.revoked == ["fb-anna"]
    assert await world.rows("SELECT count(*) FROM revocation") == [(0,)]
    # The managers heard about the /forget; Facebook's confirmation is no news for them.
    await world.settle()
    assert not any("Facebook confirmed" in m.text for m in world.telegram.messages(MANAGER.id))


# --- point 9: a connected handle invited again ---------------------------------------------------


async def test_a_connected_handle_is_invited_again_only_on_request(world: World) -> None:
    await _connect_anna(world)
    answer = await world.say(MANAGER, "/invite @anna.bakes")
    assert len(answer) == 1 and "@anna.bakes is already connected (#1)" in answer[0].text
    [[button]] = answer[0].buttons
    assert button["text"] == "Invite @anna.bakes again anyway"
    assert len(button["callback_data"].encode()) <= 64
    assert await world.rows("SELECT id, status FROM invitation") == [(1, "connected")]

    world.telegram.press(MANAGER, answer[0], "again anyway")
    await world.settle()
    card = world.telegram.last_message(MANAGER.id)
    assert card.kind == "photo" and "Invitation for @anna.bakes · #2" in card.text
    assert "t.me/" in card.text
    assert world.telegram.messages(MANAGER.id)[-2].buttons == []  # pressed: the button is gone
    assert await world.rows("SELECT id, status FROM invitation ORDER BY id") == [
        (1, "connected"),
        (2, "pending"),
    ]

    # The old button again (a second client): the new invitation is open, none more is made;
    # a toast says so (issue 9 walk, point 8), no further message.
    sent = len(world.telegram.messages(MANAGER.id))
    world.telegram.press_data(MANAGER, answer[0].message_id, "ia:1")
    await world.settle()
    toast = world.telegram.calls("answerCallbackQuery")[-1]
    assert "already has an open invitation (#2)" in toast.get("text", "")
    assert len(world.telegram.messages(MANAGER.id)) == sent
    assert await world.rows("SELECT count(*) FROM invitation") == [(2,)]

    # /show @handle: the connected one, and the others listed at the end.
    shown = (await world.say(MANAGER, "/show @anna.bakes"))[-1].text
    assert "· #1" in shown and "Connected" in shown
    assert "Other invitations for @anna.bakes" in shown
    today = utcnow()
    month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][
        today.month - 1
    ]
    assert f"#2 · not opened · {today.day} {month} {today.year}" in shown
    # A reminder is about the open one.
    reminded = await world.say(MANAGER, "/remind @anna.bakes")
    # The new, unopened one; Anna is connected through #1, which the manager hears instead of
    # "I cannot write to them" (the second walk's point 2).
    assert "already connected through an earlier one" in reminded[-1].text
    assert "cannot write to them" not in reminded[-1].text


async def test_forged_invite_again_buttons(world: World) -> None:
    await _connect_anna(world)
    answer = (await world.say(MANAGER, "/invite @anna.bakes"))[-1]
    [otto_sees, *_] = await world.say(OTHER, "/start")  # Otto is no manager
    for user, data in (
        (MANAGER, "ia:99999999999999999999999"),
        (MANAGER, "ia:9223372036854775808"),
        (MANAGER, "ia:2147483648"),
        (MANAGER, "ia:²"),
        (MANAGER, "ia:"),
        (MANAGER, "ia:77"),
        (OTHER, "ia:1"),
    ):
        before = len(world.telegram.callback_answers)
        shown = answer if user is MANAGER else otto_sees
        world.telegram.press_data(user, shown.message_id, data)
        await world.settle()
        alert = world.telegram.callback_answers[before:]
        says = "Keine Einladung #" if user is OTHER else "No invitation #"
        assert alert and says in str(alert[-1].get("text")), (data, alert)
        assert alert[-1].get("show_alert") is True
    assert await world.rows("SELECT count(*) FROM invitation") == [(1,)]


async def test_a_handle_whose_connection_ended_is_invited_without_asking(world: World) -> None:
    await _connect_anna(world)
    await world.revoke("@anna.bakes")
    answer = await world.say(MANAGER, "/invite @anna.bakes")
    assert not any("already connected" in m.text for m in answer)
    assert "Invitation for @anna.bakes · #2" in answer[-1].text
    shown = (await world.say(MANAGER, "/show @anna.bakes"))[-1].text
    assert "· #2" in shown.split("\n")[0]  # the newest open one
    assert "#1 · withdrawn" in shown


async def test_csv_names_connected_handles(world: World) -> None:
    await _connect_anna(world)
    before = len(world.telegram.messages(MANAGER.id))
    world.telegram.send_document(MANAGER, "list.csv", b"anna.bakes\nben.cooks\n")
    await world.settle()
    report = world.telegram.messages(MANAGER.id)[before].text
    assert "1 created, 1 already invited" in report
    assert "Already connected" in report and "@anna.bakes" in report
    assert await world.rows("SELECT handle FROM invitation ORDER BY id") == [
        ("anna.bakes",),
        ("ben.cooks",),
    ]


# --- point 13: the small ones --------------------------------------------------------------------


async def test_stats_round_two_of_three_to_67_percent(world: World) -> None:
    people = [TgUser(id=7200 + i, first_name=f"P{i}", language_code="en") for i in range(2)]
    tokens = [await world.invite(f"creator{i}") for i in range(3)]
    for i, person in enumerate(people):
        fb = FbUser(
            id=f"fb-{i}",
            name="P",
            pages=[FbPage(id=f"p{i}", name="P", instagram=IgAccount(f"ig{i}", f"creator{i}"))],
        )
        await world.through_checks(person, tokens[i])
        await world.facebook_login(person, fb)
        await world.telegram.wait_for(MANAGER.id, f"@creator{i} is connected")
    stats = await world.say(MANAGER, "/stats")
    assert "Connected: 2 (67%)" in stats[-1].text, stats[-1].text


async def test_list_filters_follow_the_counts_line(world: World) -> None:
    await world.invite("anna.bakes")
    listing = (await world.say(MANAGER, "/list"))[-1]
    counts_line = listing.text.split("\n")[1]
    shown = [part.split(":")[0].strip() for part in counts_line.split(" · ")]
    labels = [b["text"] for row in listing.buttons for b in row]
    assert labels == [*shown, "All"]
    assert shown == ["not opened", "in checks", "at login", "failed", "connected", "withdrawn"]
    for row in listing.buttons:
        for b in row:
            world.telegram.press(MANAGER, world.telegram.last_message(MANAGER.id), b["text"])
            await world.settle()
    assert "Showing: withdrawn" not in world.telegram.last_message(MANAGER.id).text


@pytest.mark.parametrize("command", ["/show", "/revoke", "/remind"])
@pytest.mark.parametrize(
    "ref", ["99999999999999999999999", "#9223372036854775808", "2147483648", "#0", "²"]
)
async def test_huge_or_odd_numbers_are_no_invitation(world: World, command: str, ref: str) -> None:
    await world.invite("anna.bakes")
    reply = await world.say(MANAGER, f"{command} {ref}")
    assert "No invitation" in reply[-1].text and "in your brand" in reply[-1].text, reply[-1].text
    assert await world.rows("SELECT status FROM invitation") == [("pending",)]


async def test_forged_list_buttons(world: World) -> None:
    await world.invite("anna.bakes")
    listing = (await world.say(MANAGER, "/list"))[-1]
    for data in ("l1:all:²", "l1:all:99999999999999999999999", "l1:pending:-1", "l1:x"):
        before = len(world.telegram.callback_answers)
        world.telegram.press_data(MANAGER, listing.message_id, data)
        await world.settle()
        assert world.telegram.callback_answers[before:], data
    # A huge page is the last page; the others are refused politely: never the generic error.
    assert not any("went wrong" in m.text for m in world.telegram.messages(MANAGER.id))


async def test_not_found_repeats_the_reference_as_the_console_writes_it(world: World) -> None:
    await world.invite("anna.bakes")
    for typed, shown in (
        ("/show 99", "No invitation #99 in your brand."),
        ("/show #99", "No invitation #99 in your brand."),
        ("/show ben.cooks", "No invitation @ben.cooks in your brand."),
        ("/remind https://www.instagram.com/ben.cooks/", "No invitation @ben.cooks in your brand."),
    ):
        [answer] = await world.say(MANAGER, typed)
        assert answer.text == shown, (typed, answer.text)
