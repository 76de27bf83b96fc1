"""Issue 12, what the brand sees: /profile for a brand's managers and /shared for the influencer,
end to end through the stand-ins on SQLite and PostgreSQL. The influencer connects through the
real login flow; the Graph stand-in serves the profile, insights with today's metric names,
demographics and posts, in Graph's wire format and with its "fewer than 100 followers", "no
data" and "posted before the professional account" answers."""

from __future__ import annotations

import csv
import io
import struct
import subprocess
import sys
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import col

from bot.models import Connection, ProfileSnapshot, utcnow
from sandbox.facebook import Demographics, FbPage, FbUser, IgAccount, Post
from sandbox.facebook.instagram import accounts_once
from sandbox.telegram import SentMessage, TgUser
from tests.world import ANNA, MANAGER, World

IG = "ig-100"
REACH = [100 + day for day in range(30)]  # oldest first; the last complete day is 129
# Accounts reached over the 30 days, each once, as Instagram counts them: not the days added up.
REACHED = accounts_once(REACH)


def anna(followers: int = 12_345) -> FbUser:
    account = IgAccount(
        id=IG,
        username="anna.bakes",
        followers_count=followers,
        name="Anna Bakes",
        follows_count=310,
        media_count=86,
        website="https://anna.example",
    )
    return FbUser(
        id="fb-anna", name="Anna", pages=[FbPage(id="p-100", name="Anna Bakes", instagram=account)]
    )


async def connect(world: World, person: FbUser | None = None) -> int:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, person or anna())
    await world.telegram.wait_for(MANAGER.id, "@anna.bakes is connected")
    [(number,)] = await world.rows("SELECT id FROM invitation WHERE handle = 'anna.bakes'")
    assert isinstance(number, int)
    return number


def figures_for(world: World) -> None:
    world.graph.set_insights(IG, reach=REACH)
    world.graph.set_demographics(
        IG,
        Demographics(
            age_gender={("25-34", "F"): 4000, ("25-34", "M"): 2000, ("18-24", "F"): 1500},
            country={"DE": 5000, "AT": 1500, "CH": 1000},
            city={"Berlin, Berlin": 2000, "Wien, Vienna": 900},
        ),
    )
    now = world.graph.now()
    world.graph.set_posts(
        IG,
        [
            Post(
                id=f"1790000000000000{i}",
                caption=f"Post {i}",
                timestamp=now - (i + 1) * 86400,
                like_count=300 + i,
                comments_count=20,
                reach=3000 + i,
                saved=40,
                shares=10,
            )
            for i in range(6)
        ],
    )


async def set_connection(world: World, invitation: int, **values: object) -> None:
    """What a health check (or Meta's deauthorize callback) would have written: test setup."""
    async with world.db.engine.begin() as conn:
        await conn.execute(
            sa.update(Connection)
            .where(col(Connection.invitation_id) == invitation)
            .values(**values)
        )


async def password_changed(world: World, invitation: int) -> None:
    """Broken as the health check leaves it after the influencer changed their password."""
    await set_connection(
        world,
        invitation,
        health="broken",
        health_reason="password_changed",
        health_changed_at=utcnow(),
    )


async def ask(world: World, user: TgUser, text: str) -> list[SentMessage]:
    return await world.say(user, text)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_a_manager_sees_the_profile_with_chart_and_figures(world: World) -> None:
    invitation = await connect(world)
    figures_for(world)
    answer = await ask(world, MANAGER, "/profile @anna.bakes")
    photo, text = answer[-2], answer[-1]
    assert photo.kind == "photo" and photo.document_bytes is not None
    width, height = png_size(photo.document_bytes)
    assert width > 600 and height > 600
    assert photo.text == "@anna.bakes · 12,345 followers"
    shown = text.text
    assert "Anna Bakes (@anna.bakes)" in shown
    assert "12,345 followers · follows 310 · 86 posts" in shown
    assert "Website: https://anna.example" in shown
    assert f"Accounts reached: {REACHED:,}" in shown
    assert "best day:" in shown and "129)" in shown
    assert "Women 65.2 %" not in shown  # rounded as people write it
    assert "Women 73 %" in shown and "men 27 %" in shown  # 5,500 of 7,500
    assert "Top countries: 🇩🇪 DE 67 %" in shown
    assert "Top cities: Berlin 27 %" in shown
    assert "The last 6 posts" in shown
    assert "reach 3,000 · ♥ 300 · 💬 20 · saved 40" in shown
    # (302.5 likes + 20 comments + 40 saves + 10 shares) per post ÷ 12,345 followers
    assert "Engagement rate: 3 %" in shown
    assert "Instagram's own figures can lag up to 48 hours" in shown
    assert text.button("Refresh")["callback_data"] == f"pf:{invitation}"
    # Kept: the snapshot and its headline figures.
    [(followers, reach, per_mille)] = await world.rows(
        "SELECT followers_count, reach_30d, engagement_per_mille FROM profile_snapshot"
    )
    assert (followers, reach, per_mille) == (12_345, REACHED, 30)


async def test_the_second_look_comes_from_the_cache_and_refresh_reads_again(world: World) -> None:
    invitation = await connect(world)
    figures_for(world)
    await ask(world, MANAGER, "/profile @anna.bakes")
    [(first,)] = await world.rows("SELECT fetched_at FROM profile_snapshot")
    world.graph.set_instagram_profile(IG, followers=13_000)
    again = await ask(world, MANAGER, f"/profile #{invitation}")
    assert "12,345 followers ·" in again[-1].text  # from the cache: no read
    assert await world.rows("SELECT fetched_at FROM profile_snapshot") == [(first,)]
    # Refresh within a minute of the read: answered from it.
    before = len(world.telegram.messages(MANAGER.id))
    world.telegram.press(MANAGER, again[-1], "Refresh")
    await world.settle()
    assert len(world.telegram.messages(MANAGER.id)) == before
    # Later, Refresh reads again; the old message loses its button.
    async with world.db.engine.begin() as conn:
        await conn.execute(
            sa.update(ProfileSnapshot).values(fetched_at=utcnow() - timedelta(minutes=5))
        )
    world.telegram.press(MANAGER, again[-1], "Refresh")
    await world.settle()
    fresh = world.telegram.messages(MANAGER.id)[before:]
    assert fresh[-2].kind == "photo" and fresh[-2].text == "@anna.bakes · 13,000 followers"
    assert "13,000 followers ·" in fresh[-1].text
    assert world.telegram.messages(MANAGER.id)[before - 1].buttons == []
    assert await world.rows("SELECT followers_count FROM connection") == [(13_000,)]


async def test_german_numbers_and_words(world: World) -> None:
    await connect(world)
    figures_for(world)
    world.telegram.send_text(MANAGER, "/language")
    await world.settle()
    await world.answer(MANAGER, "Deutsch")
    answer = await ask(world, MANAGER, "/profile anna.bakes")
    assert answer[-2].text == "@anna.bakes · 12.345 Follower"
    shown = answer[-1].text
    assert "12.345 Follower · folgt 310 · 86 Beiträge" in shown
    assert "Letzte 30 Tage" in shown and f"{REACHED:,}".replace(",", ".") in shown
    assert "Frauen 73 % · Männer 27 %" in shown
    assert "Engagement-Rate: 3 %" in shown
    assert "Stand:" in shown and "Uhr (UTC)" in shown
    assert answer[-1].button("Aktualisieren")


async def test_missing_figures_are_explained_never_zeros(world: World) -> None:
    await connect(world, anna(followers=80))
    world.graph.set_posts(
        IG,
        [
            Post(
                id="17900000000000099",
                caption="old",
                timestamp=world.graph.now() - 400 * 86400,
                like_count=12,
                comments_count=1,
                reach=0,
                saved=0,
                before_conversion=True,
            )
        ],
    )
    shown = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1].text
    assert "only from 100 followers on (this account has 80)" in shown
    assert "posted before the account became professional" in shown
    assert "Engagement rate: not enough posts with figures yet" in shown

    # A brand-new professional account: nothing yet, said so.
    world.graph.set_new_account(IG)
    async with world.db.engine.begin() as conn:
        await conn.execute(sa.delete(ProfileSnapshot))
    shown = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1].text
    assert "Instagram has no figures for this yet" in shown
    assert " 0 " not in shown.replace("0 %", "")


async def test_instagram_down_first_time_and_with_an_older_read(world: World) -> None:
    await connect(world)
    world.graph.set_outage(True)
    down = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1]
    assert "Instagram isn't answering right now" in down.text
    assert down.button("Refresh")
    assert await world.rows("SELECT count(*) FROM profile_snapshot") == [(0,)]
    world.graph.set_outage(False)
    await ask(world, MANAGER, "/profile @anna.bakes")
    async with world.db.engine.begin() as conn:
        await conn.execute(
            sa.update(ProfileSnapshot).values(fetched_at=utcnow() - timedelta(hours=7))
        )
    world.graph.set_outage(True)
    older = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1].text
    assert "Instagram isn't answering right now, so these are the figures from" in older
    assert "12,345 followers ·" in older


async def test_a_broken_connection_answers_with_its_health_and_remind(world: World) -> None:
    invitation = await connect(world)
    await password_changed(world, invitation)
    answer = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1]
    assert "cannot be read at all until @anna.bakes reconnects" in answer.text
    assert "password" in answer.text.lower()
    assert answer.button("Remind")["callback_data"] == f"hr:{invitation}"
    assert await world.rows("SELECT count(*) FROM profile_snapshot") == [(0,)]


async def test_not_connected_and_other_brands_see_nothing(world: World) -> None:
    await world.invite("ben.cooks")
    assert "is not connected yet" in (await ask(world, MANAGER, "/profile @ben.cooks"))[-1].text
    assert "Whose profile?" in (await ask(world, MANAGER, "/profile"))[-1].text
    invitation = await connect(world)
    # A manager of another brand: neither by handle nor by number, nor with a pressed button.
    other = TgUser(id=5002, first_name="Otto", username="otto_brand", language_code="en")
    await world.say(MANAGER, "/brand_new Second Brand")
    answer = await world.say(MANAGER, "/manager_link 2")
    link = next(w for w in answer[-1].text.split() if "t.me/" in w)
    await world.say(other, f"/start {link.rpartition('start=')[2]}")
    for ref in ("@anna.bakes", f"#{invitation}", str(invitation)):
        seen = await ask(world, other, f"/profile {ref}")
        assert seen[-1].kind == "text" and "followers" not in seen[-1].text
        shown = "@anna.bakes" if ref.startswith("@") else f"#{invitation}"
        assert seen[-1].text == f"No invitation {shown} in your brand.", seen[-1].text
    # Two handles at once: the first, and how to see the next.
    both = await ask(world, MANAGER, "/profile @anna.bakes @ben.cooks")
    assert both[0].text == (
        "One profile at a time: here is @anna.bakes. Send /profile again for the next one."
    )
    assert any("followers" in m.text for m in both[1:])
    # The first not found: only that, no "here is".
    [missing] = await ask(world, MANAGER, "/profile 99 @anna.bakes")
    assert missing.text == "No invitation #99 in your brand."
    mine = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1]
    before = len(world.telegram.messages(other.id))
    world.telegram.press_data(other, mine.message_id, f"pf:{invitation}")
    world.telegram.press_data(other, mine.message_id, f"pv:{invitation}")
    await world.settle()
    assert len(world.telegram.messages(other.id)) == before
    # Someone with no role at all.
    stranger = TgUser(id=9009, first_name="Sam", language_code="en")
    assert (
        "only the brand's managers" in (await ask(world, stranger, "/profile @anna.bakes"))[-1].text
    )


async def test_show_and_the_card_have_a_profile_button(world: World) -> None:
    invitation = await connect(world)
    # The card's edit is delivered by the outbox worker.
    card = await world.telegram.wait_for(MANAGER.id, "Connected: Instagram @anna.bakes · Page")
    assert card.kind == "photo"
    assert card.button("Profile")["callback_data"] == f"pv:{invitation}"
    shown = (await ask(world, MANAGER, "/show @anna.bakes"))[-1]
    assert shown.button("Profile")["callback_data"] == f"pv:{invitation}"
    world.telegram.press(MANAGER, shown, "Profile")
    await world.settle()
    assert world.telegram.messages(MANAGER.id)[-2].kind == "photo"
    assert "12,345 followers ·" in world.telegram.messages(MANAGER.id)[-1].text


async def test_the_influencer_sees_what_the_brand_sees(world: World) -> None:
    assert "None of your accounts is connected" in (await ask(world, ANNA, "/shared"))[-1].text
    invitation = await connect(world)
    figures_for(world)
    connected = next(m for m in world.telegram.messages(ANNA.id) if "Connected!" in m.text)
    assert connected.button("what the brand sees")["callback_data"] == f"pv:{invitation}"
    brand = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1].text
    mine = await ask(world, ANNA, "/shared")
    assert mine[-2].kind == "photo"
    shown = mine[-1].text
    assert "This is what Brandly sees of your Instagram account in this chat" in shown
    assert "/forget" in shown and "Apps and websites" in shown
    # The same figures, word for word, between the two heads.
    assert brand.split("\n", 2)[2] in shown
    # The button after connecting shows the same.
    world.telegram.press(ANNA, connected, "what the brand sees")
    await world.settle()
    assert world.telegram.messages(ANNA.id)[-1].text == shown
    # /forget deletes the snapshot with the connection.
    await world.say(ANNA, "/forget")
    await world.answer(ANNA, "forget me")
    assert await world.rows("SELECT count(*) FROM profile_snapshot") == [(0,)]


async def test_revoke_forgets_the_figures_and_export_carries_them(world: World) -> None:
    await connect(world)
    figures_for(world)
    await ask(world, MANAGER, "/profile @anna.bakes")
    before = len(world.telegram.messages(MANAGER.id))
    world.telegram.send_text(MANAGER, "/export")
    await world.settle()
    [document] = [m for m in world.telegram.messages(MANAGER.id)[before:] if m.document_bytes]
    assert document.document_bytes is not None
    rows = list(csv.reader(io.StringIO(document.document_bytes.decode())))
    # The figures, then the way the connection was made (issue 13's `path`, added last).
    assert rows[0][-5:] == [
        "followers_current",
        "reach_30d",
        "engagement_rate_percent",
        "figures_read_at",
        "path",
    ]
    assert rows[1][-5:-2] == ["12345", str(REACHED), "3.0"]
    assert rows[1][-1] == "facebook"
    await world.revoke("@anna.bakes")
    assert await world.rows("SELECT count(*) FROM profile_snapshot") == [(0,)]
    assert "has ended" in (await ask(world, MANAGER, "/profile @anna.bakes"))[-1].text


async def test_the_leader_reads_figures_nobody_asked_for(world: World) -> None:
    """/export and the read API carry figures also for connections nobody opened: the leader's
    job reads the never-read first, then those read longest ago; not the broken ones."""
    await connect(world)
    figures_for(world)
    job = next(j for j in world.bot.jobs.jobs if j.name == "refresh_figures")
    assert job.wait_first and job.every == timedelta(minutes=15)
    assert await job.run() == 1
    [(followers, reach)] = await world.rows(
        "SELECT followers_count, reach_30d FROM profile_snapshot"
    )
    assert (followers, reach) == (12_345, REACHED)
    assert await job.run() == 0  # read within the day: not again
    async with world.db.engine.begin() as conn:
        await conn.execute(
            sa.update(ProfileSnapshot).values(fetched_at=utcnow() - timedelta(hours=25))
        )
        await conn.execute(sa.update(Connection).values(health="broken"))
    assert await job.run() == 0  # broken: its health says what is wrong, not its figures
    async with world.db.engine.begin() as conn:
        await conn.execute(sa.update(Connection).values(health="healthy"))
    world.graph.set_instagram_profile(IG, followers=14_000)
    assert await job.run() == 1
    assert await world.rows("SELECT followers_count FROM profile_snapshot") == [(14_000,)]


def test_the_plotting_library_is_loaded_only_for_a_chart() -> None:
    """matplotlib (with numpy, ~40 MB) is imported when a chart is drawn, never at start-up: the
    start-up time and idle memory targets (docs/benchmarks.md) do not carry it."""
    script = (
        "import sys\n"
        "import bot.__main__, bot.app, bot.handlers.profiles, bot.chart, bot.profiles\n"
        "heavy = ('matplotlib', 'numpy', 'PIL')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


async def test_renewal_due_still_shows_the_figures_with_remind(world: World) -> None:
    invitation = await connect(world)
    await set_connection(
        world,
        invitation,
        health="renewal_due",
        health_changed_at=utcnow(),
        data_access_expires_at=utcnow() + timedelta(days=10),
    )
    answer = await ask(world, MANAGER, "/profile instagram.com/anna.bakes")  # as /invite takes it
    assert answer[-2].kind == "photo"
    assert "12,345 followers ·" in answer[-1].text and "renewal" in answer[-1].text.lower()
    assert answer[-1].button("Refresh") and answer[-1].button("Remind")


async def test_a_broken_connection_tells_the_influencer_what_the_brand_sees(world: World) -> None:
    invitation = await connect(world)
    await password_changed(world, invitation)
    shown = (await ask(world, ANNA, "/shared"))[-1].text
    assert "Brandly cannot read any of your figures until you reconnect" in shown
    assert "/start" in shown


async def test_double_taps_and_older_copies(world: World) -> None:
    invitation = await connect(world)
    shown = (await ask(world, MANAGER, "/show @anna.bakes"))[-1]
    before = len(world.telegram.messages(MANAGER.id))
    world.telegram.press(MANAGER, shown, "Profile")
    world.telegram.press(MANAGER, shown, "Profile")
    await world.settle()
    assert len(world.telegram.messages(MANAGER.id)) == before + 2  # one chart, one text
    first = world.telegram.messages(MANAGER.id)[-1]
    second = (await ask(world, MANAGER, f"/profile {invitation}"))[-1]
    assert second.button("Refresh")
    # Only the newest copy keeps its buttons.
    [older] = [m for m in world.telegram.messages(MANAGER.id) if m.message_id == first.message_id]
    assert older.buttons == []


async def test_a_connection_ended_on_facebook_says_so(world: World) -> None:
    """The app removed on Facebook: the invitation stays "connected" in its history, the
    connection is disconnected; /profile says it ended, not that it is "not connected yet"."""
    invitation = await connect(world)
    await set_connection(
        world, invitation, status="disconnected", health="disconnected", health_reason="app_removed"
    )
    answer = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1].text
    assert answer == (
        f"The connection of @anna.bakes (#{invitation}) has ended, so its figures are no longer "
        "read or kept."
    )


# --- issue 12 polish (the QA walk of "what the brand sees") ------------------------------------


def test_chart_axis_numbers_are_compact_in_the_readers_language() -> None:
    """Axis labels of big accounts ran together ("80,000160,000…") or were cut off ("987,000,000"
    on the left edge): short labels, as each language writes them."""
    from bot.i18n import Texts
    from bot.profile_screens import compact

    en, de = Texts("en"), Texts("de")
    assert [compact(en, n) for n in (0, 800, 12_480, 80_000, 2_500_000, 987_000_000)] == [
        "0",
        "800",
        "12.5K",
        "80K",
        "2.5M",
        "987M",
    ]
    assert [compact(de, n) for n in (800, 12_480, 2_500_000, 987_000_000)] == [
        "800",
        "12,5 Tsd.",
        "2,5 Mio.",
        "987 Mio.",
    ]
    assert compact(en, 999_960) == "1M"  # not "1000K"
    assert compact(en, 3_200_000_000) == "3.2B"


def test_the_chart_header_repeats_no_name() -> None:
    """On the Facebook Page way Graph often hands the username as the name: the chart said
    "@anna.bakes" over "@anna.bakes · 12,480 followers"."""
    from bot.chart import title_and_line
    from bot.i18n import Texts
    from bot.insights import Account, Activity, Audience, Profile
    from bot.profile_screens import chart_texts

    def header(name: str | None, followers: int | None = 12_480) -> tuple[str, str]:
        account = Account(username="anna.bakes", name=name, followers=followers)
        profile = Profile("1", account, Activity(), Audience(), [])
        return title_and_line(profile, chart_texts(Texts("en"), profile))

    assert header("anna.bakes") == ("@anna.bakes", "12,480 followers")
    assert header("@Anna.Bakes") == ("@anna.bakes", "12,480 followers")
    assert header(None, None) == ("@anna.bakes", "")
    assert header("Anna Bakes") == ("Anna Bakes", "@anna.bakes  ·  12,480 followers")


def anna_named(name: str, followers: int = 12_345) -> FbUser:
    person = anna(followers)
    account = person.pages[0].instagram
    assert account is not None
    account.name = name
    return person


async def test_the_text_names_the_page_and_repeats_no_name(world: World) -> None:
    await connect(world, anna_named("anna.bakes"))
    figures_for(world)
    shown = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1].text
    assert "anna.bakes (@anna.bakes)" not in shown
    # The head names @anna.bakes already: the counts follow it directly.
    lines = shown.split("\n")
    assert lines[0].startswith("📊 @anna.bakes on Instagram")
    assert lines[2].startswith("12,345 followers")
    assert "Connected through the Facebook Page Anna Bakes" in shown
    # The influencer's /shared does not name the account in its head: the name line stays.
    assert "\n@anna.bakes\n" in (await ask(world, ANNA, "/shared"))[-1].text
    world.telegram.send_text(MANAGER, "/language")
    await world.settle()
    await world.answer(MANAGER, "Deutsch")
    shown = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1].text
    assert "Verbunden über die Facebook-Seite Anna Bakes" in shown


async def test_no_followers_has_no_engagement_rate_said_plainly(world: World) -> None:
    await connect(world, anna(followers=0))
    figures_for(world)
    shown = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1].text
    assert "Engagement rate: – (no followers yet)" in shown


async def test_shared_says_what_the_platform_can_read_too(world: World) -> None:
    await connect(world)
    figures_for(world)
    shown = (await ask(world, ANNA, "/shared"))[-1].text
    assert "exactly" not in shown
    assert "This is what Brandly sees of your Instagram account in this chat" in shown
    assert "through the access you granted" in shown


async def test_a_broken_connection_is_not_read_and_says_until_when(world: World) -> None:
    invitation = await connect(world)
    shown = (await ask(world, ANNA, "/shared"))[-1]
    await password_changed(world, invitation)
    answers = len(world.telegram.callback_answers)
    world.telegram.press(ANNA, shown, "Refresh")
    await world.settle()
    toasts = [a.get("text") for a in world.telegram.callback_answers[answers:]]
    assert toasts == [None]  # no "Reading the newest figures …": nothing is read
    assert "Brandly cannot read any of your figures until you reconnect" in (
        world.telegram.messages(ANNA.id)[-1].text
    )
    answer = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1].text
    assert "cannot be read at all until @anna.bakes reconnects" in answer


async def test_buttons_of_an_ended_connection_say_it_ended(world: World) -> None:
    invitation = await connect(world)
    connected = next(m for m in world.telegram.messages(ANNA.id) if "Connected!" in m.text)
    mine = (await ask(world, MANAGER, "/profile @anna.bakes"))[-1]
    # Another brand's manager, for comparison: the generic alert, nothing more.
    other = TgUser(id=5002, first_name="Otto", username="otto_brand", language_code="en")
    await world.say(MANAGER, "/brand_new Second Brand")
    answer = await world.say(MANAGER, "/manager_link 2")
    link = next(w for w in answer[-1].text.split() if "t.me/" in w)
    await world.say(other, f"/start {link.rpartition('start=')[2]}")
    await world.revoke("@anna.bakes")

    before = len(world.telegram.messages(MANAGER.id))
    world.telegram.press(MANAGER, mine, "Refresh")
    await world.settle()
    [said] = world.telegram.messages(MANAGER.id)[before:]
    assert said.text.startswith(f"The connection of @anna.bakes (#{invitation}) has ended")
    [pressed] = [m for m in world.telegram.messages(MANAGER.id) if m.message_id == mine.message_id]
    assert pressed.buttons == []

    before = len(world.telegram.messages(ANNA.id))
    world.telegram.press(ANNA, connected, "what the brand sees")
    await world.settle()
    said = world.telegram.messages(ANNA.id)[-1]
    assert len(world.telegram.messages(ANNA.id)) == before + 1
    assert said.text == (
        "Your connection with Brandly has ended, so Brandly no longer reads or keeps your figures."
    )
    [pressed] = [
        m for m in world.telegram.messages(ANNA.id) if m.message_id == connected.message_id
    ]
    assert not any("what the brand sees" in b["text"] for row in pressed.buttons for b in row)

    before = len(world.telegram.messages(other.id))
    answers = len(world.telegram.callback_answers)
    world.telegram.press_data(other, mine.message_id, f"pf:{invitation}")
    await world.settle()
    assert len(world.telegram.messages(other.id)) == before
    [alert] = world.telegram.callback_answers[answers:]
    assert alert.get("text") == "This connection no longer exists, or it isn't yours to see."


async def test_after_forget_the_influencers_old_buttons_say_it_ended(world: World) -> None:
    await connect(world)
    shown = (await ask(world, ANNA, "/shared"))[-1]
    await world.say(ANNA, "/forget")
    await world.answer(ANNA, "forget me")
    answers = len(world.telegram.callback_answers)
    world.telegram.press(ANNA, shown, "Refresh")
    await world.settle()
    assert world.telegram.messages(ANNA.id)[-1].text.startswith(
        "Your connection with Brandly has ended"
    )
    assert [a.get("text") for a in world.telegram.callback_answers[answers:]] == [None]
    [pressed] = [m for m in world.telegram.messages(ANNA.id) if m.message_id == shown.message_id]
    assert pressed.buttons == []
