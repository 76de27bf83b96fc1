"""The manager's console end to end, through the stand-ins, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from sandbox.facebook import Consent
from sandbox.telegram import TgUser
from tests.world import ANNA, BEN, MANAGER, World, anna_on_facebook

OTHER = TgUser(id=5002, first_name="Otto", username="otto_brand", language_code="de")
STRANGER = TgUser(id=9009, first_name="Sam", language_code="en")


async def _second_brand(world: World) -> None:
    """Maria (admin) has the first brand; Otto becomes the manager of a second one."""
    await world.invite("anna.bakes")  # first use: Maria's brand is created
    created = await world.say(MANAGER, "/brand_new Zweite Marke")
    assert "Zweite Marke" in created[-1].text
    answer = await world.say(MANAGER, "/manager_link 2")
    link = next(w for w in answer[-1].text.split() if "t.me/" in w)
    payload = parse_qs(urlsplit(link).query)["start"][0]
    welcome = await world.say(OTHER, f"/start {payload}")
    assert "Manager von" in welcome[-1].text and "Zweite Marke" in welcome[-1].text
    again = await world.say(STRANGER, f"/start {payload}")
    assert "already used" in again[-1].text  # one-time


async def test_invite_answers_with_qr_and_a_live_card(world: World) -> None:
    token = await world.invite("anna.bakes")
    card = world.telegram.messages(MANAGER.id)[-1]
    assert card.kind == "photo" and card.document_bytes and card.document_bytes[:4] == b"\x89PNG"
    assert "Not opened yet" in card.text and token in card.text

    await world.open_link(ANNA, token)
    await world.telegram.wait_for(MANAGER.id, "step 1 of 3")
    await world.answer(ANNA, "Yes")
    await world.telegram.wait_for(MANAGER.id, "Step 2 of 3")
    await world.answer(ANNA, "Yes")
    await world.telegram.wait_for(MANAGER.id, "login handed out")
    await world.facebook_login(ANNA, anna_on_facebook())
    final = await world.telegram.wait_for(MANAGER.id, "🟢 Connected: Instagram @anna.bakes")
    assert final.message_id == card.message_id  # the same message, edited in place
    assert final.edits >= 4 and token in final.text  # the link stays on the card


async def test_duplicates_and_invalid_handles(world: World) -> None:
    await world.invite("anna.bakes")
    answers = await world.say(MANAGER, "/invite @anna.bakes @ben.cooks @bad..name")
    texts = [m.text for m in answers]
    assert any("@anna.bakes already has an open invitation (#1)" in t for t in texts)
    assert any("bad..name" in t and "not a valid" in t for t in texts)
    assert any("Invitation for @ben.cooks" in t for t in texts)
    assert await world.rows("SELECT handle FROM invitation ORDER BY id") == [
        ("anna.bakes",),
        ("ben.cooks",),
    ]


async def test_bulk_csv_with_good_duplicate_and_broken_rows(world: World) -> None:
    await world.invite("anna.bakes")
    content = (
        b"handle,note\n@Anna.Bakes,again\nben.cooks,baking series\n\nnot valid!,x\n"
        b"carla_cooks\nben.cooks,twice\n"
    )
    before = len(world.telegram.messages(MANAGER.id))
    world.telegram.send_document(MANAGER, "list.csv", content)
    await world.settle()
    new = world.telegram.messages(MANAGER.id)[before:]
    report = new[0].text
    assert "2 created, 1 already invited, 2 invalid" in report
    assert "Line 5: “not valid!”" in report and "Line 7" in report
    assert "@anna.bakes" in report
    links = new[1]
    assert links.kind == "document" and links.document_bytes is not None
    rows = list(csv.reader(io.StringIO(links.document_bytes.decode())))
    assert [r[0] for r in rows] == ["handle", "ben.cooks", "carla_cooks"]
    assert rows[1][1] == "baking series" and "t.me/" in rows[1][2]
    assert await world.rows("SELECT handle, note FROM invitation ORDER BY id") == [
        ("anna.bakes", None),
        ("ben.cooks", "baking series"),
        ("carla_cooks", None),
    ]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\xff\xfe\x00bad", "not a text/CSV file"),
        (b"handle\n" + b'a,b,"unterminated\n' * 3, "cannot be read"),
        (b"x" * 300_000, "too large"),
        (b"handle\n" + b"".join(f"user{i}\n".encode() for i in range(1200)), "At most 1000 rows"),
    ],
)
async def test_malformed_csv_creates_nothing(world: World, content: bytes, says: str) -> None:
    await world.invite("anna.bakes")
    before = len(world.telegram.messages(MANAGER.id))
    world.telegram.send_document(MANAGER, "list.csv", content)
    await world.settle()
    reply = world.telegram.messages(MANAGER.id)[before:]
    assert says in reply[-1].text and "Nothing was created" in reply[-1].text
    assert await world.rows("SELECT count(*) FROM invitation") == [(1,)]


async def test_brand_isolation(world: World) -> None:
    await _second_brand(world)
    [(anna_id,)] = await world.rows("SELECT id FROM invitation")
    for command in (
        f"/show {anna_id}",
        "/show @anna.bakes",
        f"/remind #{anna_id}",
        f"/revoke {anna_id}",
    ):
        reply = await world.say(OTHER, command)
        assert "Keine Einladung" in reply[-1].text, command
    export = await world.say(OTHER, "/export")
    assert export[-1].document_bytes is not None and b"anna.bakes" not in export[-1].document_bytes
    listing = await world.say(OTHER, "/list")
    assert "anna.bakes" not in listing[-1].text and "0 Einladungen" in listing[-1].text
    world.telegram.press_data(OTHER, listing[-1].message_id, "l1:all:0")
    await world.settle()
    assert "anna.bakes" not in world.telegram.last_message(OTHER.id).text
    assert await world.rows("SELECT status, reminded_at FROM invitation") == [("pending", None)]

    # Otto's own invitation is his; Maria (another brand) cannot touch it either.
    await world.say(OTHER, "/invite @otto.eats")
    reply = await world.say(MANAGER, "/revoke @otto.eats")
    assert "No invitation" in reply[-1].text
    statuses = await world.rows("SELECT handle, status FROM invitation ORDER BY id")
    assert statuses == [("anna.bakes", "pending"), ("otto.eats", "pending")]


@pytest.mark.parametrize(
    "command",
    ["/invite @x", "/list", "/show 1", "/remind 1", "/revoke 1", "/export", "/stats", "/team"],
)
async def test_non_manager_gets_a_polite_refusal(world: World, command: str) -> None:
    await world.invite("anna.bakes")
    reply = await world.say(STRANGER, command)
    assert "only the brand's managers" in reply[-1].text and str(STRANGER.id) in reply[-1].text
    assert await world.rows("SELECT count(*), max(status) FROM invitation") == [(1, "pending")]


@pytest.mark.parametrize(
    "command",
    ["/brand_new X", "/brands", "/manager_link 1", "/managers 1", "/manager_remove 1 5001"],
)
async def test_admin_commands_are_for_admins(world: World, command: str) -> None:
    await world.invite("anna.bakes")
    reply = await world.say(STRANGER, command)
    assert "only administrators" in reply[-1].text
    assert await world.rows("SELECT count(*) FROM brand") == [(1,)]
    assert await world.rows("SELECT count(*) FROM manager") == [(1,)]


async def test_managers_are_listed_and_removed(world: World) -> None:
    await _second_brand(world)
    listing = await world.say(MANAGER, "/managers 2")
    assert "Otto" in listing[-1].text and str(OTHER.id) in listing[-1].text
    removed = await world.say(MANAGER, f"/manager_remove 2 {OTHER.id}")
    assert "Removed" in removed[-1].text
    refused = await world.say(OTHER, "/list")
    assert "nur Manager der Marke" in refused[-1].text


async def test_remind_once_a_day_and_unopened_links(world: World) -> None:
    token = await world.invite("anna.bakes")
    reply = await world.say(MANAGER, "/remind @anna.bakes")
    assert "has not opened the link yet" in reply[-1].text and token in reply[-1].text
    await world.open_link(ANNA, token)
    reply = await world.say(MANAGER, "/remind @anna.bakes")
    assert "Reminder sent" in reply[-1].text
    nudge = await world.telegram.wait_for(ANNA.id, "A reminder from")
    assert "Continue" in nudge.buttons[0][0]["text"]
    again = await world.say(MANAGER, "/remind @anna.bakes")
    assert "less than 24 hours ago" in again[-1].text
    assert sum("A reminder from" in m.text for m in world.telegram.messages(ANNA.id)) == 1
    resumed = await world.answer(ANNA, "Continue")
    assert "Step 1 of 3" in resumed.text


async def test_revoke_a_connection_reaches_facebook(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(MANAGER.id, "is connected")
    reply = await world.revoke("@anna.bakes")
    assert "including its permissions at Facebook" in reply[-1].text
    assert world.graph.revoked == ["fb-anna"]
    told = await world.telegram.wait_for(ANNA.id, "was withdrawn by the brand")
    assert "no longer works" in told.text
    assert await world.rows("SELECT status FROM invitation") == [("revoked",)]
    assert await world.rows("SELECT status, token_encrypted FROM connection") == [("revoked", None)]
    reopened = await world.open_link(BEN, token)
    assert "zurückgezogen" in reopened.text  # Ben reads German


async def test_export_content(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.invite("ben.cooks")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.telegram.wait_for(MANAGER.id, "is connected")
    reply = await world.say(MANAGER, "/export")
    assert reply[-1].document_name == "invitations-export.csv"
    rows = list(csv.DictReader(io.StringIO((reply[-1].document_bytes or b"").decode())))
    assert [(r["handle"], r["status"], r["status_code"]) for r in rows] == [
        ("anna.bakes", "connected", "connected"),
        ("ben.cooks", "not opened", "pending"),
    ]
    anna = rows[0]
    assert anna["page_name"] == "Anna Bakes" and anna["instagram_id"] == "ig-100"
    assert anna["opened_at"] and anna["connected_at"] and anna["followers"] == "12345"


async def test_funnel_after_a_mix_of_outcomes(world: World) -> None:
    people = [TgUser(id=7100 + i, first_name=f"P{i}", language_code="en") for i in range(5)]
    tokens = [await world.invite(f"person{i}") for i in range(6)]  # the 6th never opens
    for i, person in enumerate(people):
        await world.open_link(person, tokens[i])
    for person in people[1:]:
        await world.answer(person, "Yes")
        await world.answer(person, "Yes")
    outcomes = [Consent(cancel=True), Consent(declined={"instagram_basic"}), None, None]
    for i, person in enumerate(people[1:], start=1):
        from sandbox.facebook import FbPage, FbUser, IgAccount

        fb = FbUser(
            id=f"fb-{i}",
            name="P",
            pages=[FbPage(id=f"p{i}", name="P", instagram=IgAccount(f"ig{i}", f"person{i}"))],
        )
        await world.facebook_login(person, fb, outcomes[i - 1])
    reply = await world.say(MANAGER, "/stats")
    text = reply[-1].text
    for line in (
        "Created: 6",
        "Opened: 5",
        "Checks passed: 4",
        "Login started: 4",
        "Connected: 2 (33%)",
    ):
        assert line in text, text
    assert "cancelled the login: 1" in text and "permissions declined: 1" in text


async def test_console_in_german(world: World) -> None:
    world.telegram.send_text(MANAGER, "/language")
    await world.settle()
    await world.answer(MANAGER, "Deutsch")
    token = await world.invite("anna.bakes")
    card = world.telegram.messages(MANAGER.id)[-1]
    assert "Einladung für @anna.bakes" in card.text and "Noch nicht geöffnet" in card.text
    await world.open_link(ANNA, token)
    await world.telegram.wait_for(MANAGER.id, "Schritt 1 von 3")
    listing = await world.say(MANAGER, "/list")
    assert "1 Einladung\n" in listing[-1].text and "in Prüfung: 1" in listing[-1].text
    stats = await world.say(MANAGER, "/stats")
    assert "Trichter" in stats[-1].text


async def test_list_pages_and_filters(world: World) -> None:
    content = "\n".join(f"creator{i:02d}" for i in range(23)).encode()
    await world.invite("anna.bakes")
    world.telegram.send_document(MANAGER, "list.csv", content)
    await world.settle()
    listing = (await world.say(MANAGER, "/list"))[-1]
    assert "24 invitations" in listing.text and listing.text.count("\n#") == 10
    world.telegram.press(MANAGER, listing, "More")
    await world.settle()
    page2 = world.telegram.messages(MANAGER.id)[-1]
    assert page2.message_id == listing.message_id and page2.edits == 1
    filtered = (await world.say(MANAGER, "/list connected"))[-1]
    assert "Nothing here" in filtered.text


async def test_team_chat_needs_a_group(world: World) -> None:
    await world.invite("anna.bakes")
    reply = await world.say(MANAGER, "/team")
    assert "group chat" in reply[-1].text


async def test_team_chat_hears_results_too(world: World) -> None:
    team = -100123
    token = await world.invite("anna.bakes")
    world.telegram.send_group_text(MANAGER, team, "Brandly team", "/team")
    await world.settle()
    assert "now receives the notifications" in world.telegram.last_message(team).text
    world.telegram.send_group_text(STRANGER, team, "Brandly team", "/team")
    await world.settle()
    assert "only the brand's managers" in world.telegram.last_message(team).text
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(declined={"instagram_basic"}))
    news = await world.telegram.wait_for(team, "tried to connect")
    assert "@anna.bakes" in news.text and "a permission was declined" in news.text
    await world.telegram.wait_for(MANAGER.id, "tried to connect")


async def test_stalled_influencer_is_reported_once(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.open_link(ANNA, token)

    async def age(hours: int) -> None:
        """Move the invitation's history back in time (a reported stall, then the progress)."""
        then = datetime.now(UTC) - timedelta(hours=hours)
        async with world.db.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE invitation SET updated_at = :t"), {"t": then})
            await conn.execute(
                sa.text("UPDATE invitation SET stalled_at = :s WHERE stalled_at IS NOT NULL"),
                {"s": then - timedelta(hours=1)},
            )

    assert await world.bot.console.report_stalled(hours=24) == 0  # fresh: not stalled
    await age(25)
    assert await world.bot.console.report_stalled(hours=24) == 1
    news = await world.telegram.wait_for(MANAGER.id, "made no progress for 24 hours")
    assert "@anna.bakes" in news.text and "step 1 of 3" in news.text
    assert await world.bot.console.report_stalled(hours=24) == 0  # once per stall
    await world.answer(ANNA, "Yes")  # progress, then stuck again
    await age(30)
    assert await world.bot.console.report_stalled(hours=24) == 1


async def test_several_handles_within_the_per_chat_limit(world: World) -> None:
    await world.invite("anna.bakes")
    world.telegram.set_rate_limits(global_per_second=30, per_chat_per_second=1)
    answers = await world.say(MANAGER, "/invite @anna.bakes @one.more @two.more @three.more")
    cards = [m for m in answers if m.kind == "photo"]
    assert len(cards) == 3 and "already has an open invitation" in answers[0].text
    assert world.telegram.rate_limited_count == 0


async def test_login_finishing_after_a_revoke_keeps_nothing(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    world.graph.set_person(anna_on_facebook())
    callback = (await world.browser.get(world.login_url(ANNA))).headers["location"]
    await world.say(MANAGER, "/revoke @anna.bakes")  # while Anna is on Facebook
    page = await world.browser.get(callback)
    assert page.status_code == 410 and "withdrawn" in page.text
    await world.telegram.wait_for(ANNA.id, "was withdrawn by the brand")
    await world.settle()
    assert not any("Connected!" in m.text for m in world.telegram.messages(ANNA.id))
    assert await world.rows("SELECT count(*) FROM connection") == [(0,)]
    assert await world.rows("SELECT status FROM invitation") == [("revoked",)]
    assert await world.rows("SELECT outcome FROM login_attempt") == [(None,)]
    assert not any(p.endswith("/oauth/access_token") for _, p, _ in world.graph.requests)
