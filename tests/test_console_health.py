"""Issue 11, what the manager sees: each connection's health in /list, /show, /export and
/stats, and /health, the connections that need attention. End to end through the stand-ins on
SQLite and PostgreSQL. The connections are made through the real login flow; their health is
then set in the database as the health check (`bot.upkeep`) would leave it: test setup only."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col

from bot.buttons import RemindHealth
from bot.console_screens import HealthPage
from bot.models import Connection, Invitation, utcnow
from sandbox.facebook import FbPage, FbUser, IgAccount
from sandbox.telegram import SentMessage, TgUser
from tests.world import MANAGER, World


async def _connect(world: World, count: int) -> dict[str, int]:
    """`count` influencers connected through the real flow: handle → invitation id."""
    ids: dict[str, int] = {}
    for i in range(count):
        handle = f"creator{i}"
        person = TgUser(id=7300 + i, first_name=f"C{i}", language_code="en")
        token = await world.invite(handle)
        await world.through_checks(person, token)
        page = FbPage(id=f"p{i}", name=f"Page {i}", instagram=IgAccount(f"ig{i}", handle))
        await world.facebook_login(person, FbUser(id=f"fb-{i}", name=f"C{i}", pages=[page]))
        await world.telegram.wait_for(MANAGER.id, f"@{handle} is connected")
        [(number,)] = await world.rows(f"SELECT id FROM invitation WHERE handle = '{handle}'")
        assert isinstance(number, int)
        ids[handle] = number
    return ids


async def _set(world: World, invitation_id: int, **values: object) -> None:
    """What a health check (or the deauthorize callback) would have written."""
    async with world.db.engine.begin() as conn:
        await conn.execute(
            sa.update(Connection)
            .where(col(Connection.invitation_id) == invitation_id)
            .values(**values)
        )


_MONTHS = {
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    "de": [
        "Jan.",
        "Feb.",
        "März",
        "Apr.",
        "Mai",
        "Juni",
        "Juli",
        "Aug.",
        "Sept.",
        "Okt.",
        "Nov.",
        "Dez.",
    ],
}


def _day(moment: datetime, language: str = "en") -> str:
    """As the console writes a day: 26 Mar 2026, 26. März 2026."""
    month = _MONTHS[language][moment.month - 1]
    if language == "de":
        return f"{moment.day}. {month} {moment.year}"
    return f"{moment.day} {month} {moment.year}"


def _remind_buttons(message: SentMessage) -> list[tuple[str, str]]:
    return [
        (b["text"], b["callback_data"])
        for row in message.buttons
        for b in row
        if b.get("callback_data", "").startswith("hr:")
    ]


async def _german(world: World) -> None:
    world.telegram.send_text(MANAGER, "/language")
    await world.settle()
    await world.answer(MANAGER, "Deutsch")


async def test_health_lists_what_needs_attention_newest_problem_first(world: World) -> None:
    ids = await _connect(world, 4)
    now = utcnow()
    await _set(
        world,
        ids["creator0"],
        health="broken",
        health_reason="password_changed",
        health_changed_at=now - timedelta(days=2),
    )
    await _set(
        world,
        ids["creator1"],
        health="renewal_due",
        health_changed_at=now - timedelta(days=1),
        data_access_expires_at=now + timedelta(days=10),
        token_expires_at=now + timedelta(days=40),
        renewed_at=now - timedelta(days=80),
    )
    # The app removed on Facebook three days ago (the deauthorize callback ends it).
    await _set(world, ids["creator2"], status="disconnected", ended_at=now - timedelta(days=3))

    health = (await world.say(MANAGER, "/health"))[-1]
    lines = health.text.split("\n")
    assert lines[0] == "3 connections need attention (newest problem first)"
    assert lines[1:4] == [
        f"⏳ @creator1 (#{ids['creator1']}) · renewal due: access ends "
        f"{_day(now + timedelta(days=10))}",
        f"⚠️ @creator0 (#{ids['creator0']}) · broken since {_day(now - timedelta(days=2))}: "
        "Facebook password changed",
        f"🔌 @creator2 (#{ids['creator2']}) · disconnected on {_day(now - timedelta(days=3))}: "
        "app removed on Facebook",
    ]
    assert _remind_buttons(health) == [
        (f"🔔 Remind @{h}", RemindHealth(ids[h]).pack())
        for h in ("creator1", "creator0", "creator2")
    ]

    listing = (await world.say(MANAGER, "/list"))[-1]
    assert listing.text.split("\n")[2] == (
        "⚠️ 1 broken · ⏳ 1 renewal due · 🔌 1 disconnected · ✅ 1 healthy · /health"
    )
    assert f"#{ids['creator0']} @creator0 · connected · ⚠️ broken" in listing.text
    assert f"#{ids['creator1']} @creator1 · connected · ⏳ renewal due" in listing.text
    assert f"#{ids['creator2']} @creator2 · connected · 🔌 disconnected" in listing.text
    assert f"#{ids['creator3']} @creator3 · connected\n" in listing.text + "\n"

    stats = (await world.say(MANAGER, "/stats"))[-1].text
    for line in (
        "✅ Healthy: 1",
        "⏳ Renewal due: 1",
        "⚠️ Broken: 1",
        "🔌 Disconnected in the last 30 days: 1",
        "🔁 Kept alive by renewal: 1",
    ):
        assert line in stats, stats

    # A disconnection a month old is history; the others are fixed: nothing needs attention.
    await _set(world, ids["creator2"], ended_at=now - timedelta(days=31))
    await _set(world, ids["creator0"], health="healthy", health_reason=None)
    await _set(world, ids["creator1"], health="healthy", renewed_at=now)
    assert (await world.say(MANAGER, "/health"))[-1].text == "All connections are healthy ✅"
    listing = (await world.say(MANAGER, "/list"))[-1]
    assert listing.text.split("\n")[2] == "✅ All 3 connections are healthy"
    assert "🔁 Kept alive by renewal: 1" in (await world.say(MANAGER, "/stats"))[-1].text

    await _german(world)
    assert (await world.say(MANAGER, "/health"))[-1].text == "Alle Verbindungen sind in Ordnung ✅"


async def test_health_is_paged_like_list(world: World) -> None:
    """Twelve broken connections (rows written directly: the flow is tested above)."""
    content = "\n".join(f"creator{i}" for i in range(12)).encode()
    world.telegram.send_document(MANAGER, "list.csv", content)
    await world.settle()
    now = utcnow()
    async with world.db.engine.begin() as conn:
        query = sa.select(col(Invitation.id), col(Invitation.handle))
        invites = (await conn.execute(query)).all()
        await conn.execute(sa.update(Invitation).values(status="connected"))
        for number, handle in invites:
            await conn.execute(
                sa.insert(Connection).values(
                    invitation_id=number,
                    facebook_user_id=f"fb-{number}",
                    page_id=f"p{number}",
                    page_name="Page",
                    instagram_id=f"ig{number}",
                    instagram_username=handle,
                    permissions="instagram_basic",
                    created_at=now - timedelta(days=60),
                    status="active",
                    health="broken",
                    health_reason="page_unpublished",
                    # creator11's problem is the newest.
                    health_changed_at=now - timedelta(hours=100 - (number or 0)),
                )
            )
    first = (await world.say(MANAGER, "/health"))[-1]
    assert first.text.startswith("12 connections need attention")
    assert first.text.split("\n")[1].startswith("⚠️ @creator11 ")
    assert len(_remind_buttons(first)) == 10
    nav = [b for b in first.buttons[-1] if not b["callback_data"].startswith("hr:")]
    assert [(b["text"], b["callback_data"]) for b in nav] == [("More ▶️", HealthPage(1).pack())]

    world.telegram.press(MANAGER, first, "More")
    await world.settle()
    second = world.telegram.last_message(MANAGER.id)
    assert second.message_id == first.message_id  # the same message, turned to page 2
    assert [line.split(" ")[1] for line in second.text.split("\n")[1:3]] == [
        "@creator1",
        "@creator0",
    ]
    assert [b["text"] for b in second.buttons[-1]] == ["◀️ Back"]

    # A forged page press is answered, not a traceback.
    world.telegram.press_data(MANAGER, first.message_id, "hh1:x")
    await world.settle()


async def test_show_tells_the_health_and_offers_a_reminder(world: World) -> None:
    ids = await _connect(world, 1)
    number = ids["creator0"]
    now = utcnow()
    token_ends, data_ends = now + timedelta(days=50), now + timedelta(days=80)
    checked = now - timedelta(hours=3)
    await _set(
        world,
        number,
        health="broken",
        health_reason="page_role_lost",
        health_changed_at=now - timedelta(days=1),
        token_expires_at=token_ends,
        data_access_expires_at=data_ends,
        checked_at=checked,
        renewed_at=now - timedelta(days=10),
    )
    show = (await world.say(MANAGER, "/show @creator0"))[-1]
    assert "⚠️ Connection broken: no longer has a role on the Page" in show.text
    for line in (
        f"Health: ⚠️ broken since {_day(now - timedelta(days=1))}: no longer has a role on the Page",
        f"Last check: {_day(checked)} {checked:%H:%M} UTC",
        f"Renewed on {_day(now - timedelta(days=10))}",
    ):
        assert line in show.text, show.text
    # Broken: nothing runs until a reconnect, so no "does not expire" beside it.
    assert "does not expire" not in show.text and "data access until" not in show.text
    assert _remind_buttons(show) == [("🔔 Remind @creator0", RemindHealth(number).pack())]

    await _set(world, number, health="healthy", health_reason=None, checked_at=None)
    show = (await world.say(MANAGER, "/show #" + str(number)))[-1]
    assert "Health: ✅ healthy" in show.text and "Last check: not checked yet" in show.text
    # The login keeps the Page's token, which does not expire: data access is what ends.
    assert f"Page access does not expire · data access until {_day(data_ends)}" in show.text
    assert "Connected: Instagram @creator0" in show.text
    assert _remind_buttons(show) == []

    await _german(world)
    await _set(
        world,
        number,
        health="renewal_due",
        health_changed_at=now,
        data_access_expires_at=now + timedelta(days=3),
    )
    show = (await world.say(MANAGER, "/show @creator0"))[-1]
    ends = _day(now + timedelta(days=3), "de")
    assert f"Erneuerung fällig: Zugriff endet am {ends}" in show.text  # the card's status
    assert (
        f"Zustand: ⏳ Erneuerung fällig seit {_day(now, 'de')}: Der Zugriff endet am {ends}, "
        "wenn @creator0 nicht erneuert"
    ) in show.text
    assert _remind_buttons(show) == [("🔔 @creator0 erinnern", RemindHealth(number).pack())]


async def _export_rows(world: World) -> list[list[str]]:
    before = len(world.telegram.messages(MANAGER.id))
    world.telegram.send_text(MANAGER, "/export")
    await world.settle()
    [document] = [m for m in world.telegram.messages(MANAGER.id)[before:] if m.document_bytes]
    assert document.document_bytes is not None
    rows = list(csv.reader(io.StringIO(document.document_bytes.decode())))
    # Up to the health columns; the profile's figures after them are tests/test_profile.py's.
    return [row[:HEALTH_COLUMNS_END] for row in rows]


HEALTH_COLUMNS_END = 23


async def test_export_appends_the_health_columns(world: World) -> None:
    ids = await _connect(world, 2)
    await world.invite("not.yet")
    now = utcnow().replace(microsecond=0)
    await _set(
        world,
        ids["creator0"],
        health="broken",
        health_reason="permissions_declined",
        data_access_expires_at=now + timedelta(days=80),
        token_expires_at=now + timedelta(days=50),
        checked_at=now,
    )
    await _set(world, ids["creator1"], health="healthy", health_reason=None, checked_at=now)
    rows = await _export_rows(world)
    assert rows[0] == [
        "id",
        "handle",
        "note",
        "status",
        "status_code",
        "last_reason",
        "created_at",
        "opened_at",
        "login_started_at",
        "connected_at",
        "updated_at",
        "page_id",
        "page_name",
        "instagram_id",
        "instagram_username",
        "followers",
        "health",
        "health_reason",
        "data_access_expires_at",
        "checked_at",
        "health_code",
        "health_reason_code",
        "token_expires_at",
    ]
    broken, healthy, pending = rows[1], rows[2], rows[3]
    # As the console says it (no emoji: a spreadsheet filters on it), then the stable codes.
    assert broken[1] == "creator0" and broken[-7:] == [
        "broken",
        "a permission was removed",
        (now + timedelta(days=80)).isoformat(),
        now.isoformat(),
        "broken",
        "permissions_declined",
        (now + timedelta(days=50)).isoformat(),
    ]
    assert healthy[1] == "creator1" and healthy[-7:-5] == ["healthy", ""]
    assert healthy[-3:-1] == ["healthy", ""] and healthy[-1]
    assert pending[1] == "not.yet" and pending[-7:] == [""] * 7

    # In the manager's language; the codes stay as they are. A connection that ended on
    # Facebook's side is disconnected, whatever its last check said.
    await _set(world, ids["creator1"], status="disconnected", health_reason="app_removed")
    await _german(world)
    rows = await _export_rows(world)
    assert rows[0][16:18] == ["health", "health_reason"]  # column names are for programs
    assert rows[1][16:18] == ["unterbrochen", "eine Berechtigung wurde entzogen"]
    assert rows[1][-3:-1] == ["broken", "permissions_declined"]
    assert rows[2][16:18] == ["getrennt", "App auf Facebook entfernt"]
    assert rows[2][-3:-1] == ["disconnected", "app_removed"]
    # Its status says so too: a filter on "connected" counts the live connections only.
    assert rows[1][3:5] == ["verbunden", "connected"]
    assert rows[2][3:5] == ["getrennt", "disconnected"]


async def test_health_is_for_the_brands_managers_only(world: World) -> None:
    ids = await _connect(world, 1)
    await _set(world, ids["creator0"], health="broken", health_reason="token_expired")
    stranger = TgUser(id=9009, first_name="Sam", language_code="en")
    assert "only the brand's managers" in (await world.say(stranger, "/health"))[-1].text
    # A manager of another brand sees none of this brand's connections.
    other = TgUser(id=5002, first_name="Otto", username="otto_brand", language_code="de")
    await world.say(MANAGER, "/brand_new Zweite Marke")
    answer = await world.say(MANAGER, "/manager_link 2")
    link = next(w for w in answer[-1].text.split() if "t.me/" in w)
    await world.say(other, f"/start {link.rpartition('start=')[2]}")
    assert (await world.say(other, "/health"))[-1].text == "Alle Verbindungen sind in Ordnung ✅"
    assert "1 connection needs attention" in (await world.say(MANAGER, "/health"))[-1].text


async def test_typed_remind_of_a_connected_influencer_is_about_the_connection(
    world: World,
) -> None:
    ids = await _connect(world, 1)
    number = ids["creator0"]
    person = 7300
    # Working: nothing to remind of (not "no reminder needed" for a connection in trouble).
    [answer] = await world.say(MANAGER, "/remind @creator0")
    works = "✅ The connection of @creator0 works: there is nothing to remind them of."
    assert answer.text == works

    await _set(
        world,
        number,
        health="broken",
        health_reason="page_role_lost",
        health_changed_at=utcnow() - timedelta(hours=2),
    )
    before = len(world.telegram.messages(person))
    [answer] = await world.say(MANAGER, "/remind @creator0")
    assert answer.text == "📨 Reminder sent to @creator0."
    reminder = await world.telegram.wait_for(person, "A reminder from")
    assert world.telegram.messages(person)[before:] == [reminder]
    assert reminder.text.startswith("👋 A reminder from "), reminder.text
    assert "You no longer have a role on your Page Page 0" in reminder.text, reminder.text
    assert [b["text"] for row in reminder.buttons for b in row][:1] == ["🔁 Reconnect"]

    # Typed again at once: on its way; later, the same limit as the Remind button: once an hour.
    [again] = await world.say(MANAGER, "/remind @creator0")
    assert again.text == "📨 The reminder to @creator0 is on its way."
    async with world.db.engine.begin() as conn:
        await conn.execute(
            sa.update(Invitation).values(reminded_at=utcnow() - timedelta(minutes=1))
        )
    [again] = await world.say(MANAGER, "/remind @creator0")
    assert again.text.startswith("⏳ @creator0 was reminded less than an hour ago."), again.text
    await world.settle()
    assert len(world.telegram.messages(person)) == before + 1
