"""The console's screens are pure: given the data and the reader's texts, the exact text (and
buttons) the manager sees, in English and German, without a database or a bot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot import console_screens as screens
from bot.buttons import RemindHealth
from bot.console_screens import (
    CardFacts,
    HealthFacts,
    HealthPage,
    InviteAgain,
    InviteReport,
    ListFacts,
    ListPage,
    ShowFacts,
)
from bot.health import HealthReason
from bot.i18n import Texts
from bot.models import Connection, Invitation, InviteStatus
from bot.screens import Screen
from bot.store import Created, Funnel
from bot.store.console import HealthCounts, NeedsAttention

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=UTC)
EN, DE = Texts("en"), Texts("de")


def _invite(number: int = 7, handle: str = "anna.bakes", **fields: object) -> Invitation:
    values: dict[str, object] = {
        "id": number,
        "token_hash": f"h{number}",
        "handle": handle,
        "created_by": 42,
        "inviter_name": "Mara",
        "expires_at": NOW + timedelta(days=7),
        "created_at": NOW - timedelta(days=1),
        "updated_at": NOW,
        "brand_id": 1,
    }
    values.update(fields)
    return Invitation.model_validate(values)


def _buttons(screen: Screen) -> list[list[tuple[str, str | None]]]:
    assert screen.keyboard is not None
    return [
        [(b.text, b.callback_data if isinstance(b.callback_data, str) else None) for b in row]
        for row in screen.keyboard.inline_keyboard
    ]


# --- the live card ----------------------------------------------------------------------------


def test_card_of_a_pending_invitation_in_both_languages() -> None:
    facts = CardFacts(_invite(note="summer"), link="https://t.me/bot?start=x")
    assert screens.card_text(EN, facts, now=NOW) == (
        "📨 <b>Invitation for @anna.bakes</b> · #7 · summer\n⚪ Not opened yet\n\n"
        "https://t.me/bot?start=x\n<i>Updated 15:09 UTC</i>"
    )
    assert screens.card_text(DE, facts, now=NOW) == (
        "📨 <b>Einladung für @anna.bakes</b> · #7 · summer\n⚪ Noch nicht geöffnet\n\n"
        "https://t.me/bot?start=x\n<i>Aktualisiert 15:09 UTC</i>"
    )


def test_card_news_from_an_earlier_day_carries_its_date() -> None:
    facts = CardFacts(_invite(), at=NOW - timedelta(days=2))
    assert screens.card_text(EN, facts, now=NOW).endswith("<i>Updated 12 Mar 2026 15:09 UTC</i>")
    assert screens.card_text(DE, facts, now=NOW).endswith(
        "<i>Aktualisiert 12. März 2026 15:09 UTC</i>"
    )


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (EN, "🔴 3 logins did not work, the last: cancelled the login"),
        (DE, "🔴 3 Anmeldungen haben nicht geklappt, zuletzt: Anmeldung abgebrochen"),
    ],
)
def test_status_of_repeated_failures_counts_them(texts: Texts, expected: str) -> None:
    invite = _invite(status=InviteStatus.FAILED, last_reason="cancelled")
    assert screens.status_line(texts, CardFacts(invite, failures=3), now=NOW) == expected


def test_status_lines_from_the_gathered_facts_alone() -> None:
    expired = _invite(expires_at=NOW - timedelta(seconds=1))
    assert screens.status_line(EN, CardFacts(expired), now=NOW) == (
        "⌛ Link expired before it was opened"
    )
    revoked = _invite(status=InviteStatus.REVOKED)
    assert screens.status_line(DE, CardFacts(revoked, data_deleted=True), now=NOW) == (
        "🗑 Geschlossen: Daten auf Wunsch der Person gelöscht"
    )
    # Connected, but the connection is not at hand: the handle stands for the account.
    connected = _invite(status=InviteStatus.CONNECTED)
    assert screens.status_line(EN, CardFacts(connected), now=NOW) == (
        "🟢 Connected: Instagram @anna.bakes · Page "
    )


# --- /list ------------------------------------------------------------------------------------


def test_list_page_with_its_buttons() -> None:
    counts = {"pending": 11, "connected": 1}
    invites = [_invite(n, f"h{n}") for n in range(1, 11)]
    page = screens.clamp_page(counts, None, 5)  # past the end: the last page
    assert page == 1
    screen = screens.list_screen(EN, ListFacts(counts, None, page, invites[:2]))
    assert screen.text == (
        "<b>12 invitations</b>\nnot opened: 11 · in checks: 0 · at login: 0 · failed: 0 · "
        "connected: 1 · withdrawn: 0\n#1 @h1 · not opened\n#2 @h2 · not opened"
    )
    rows = _buttons(screen)
    assert rows[0] == [("◀️ Back", ListPage("all", 0).pack())]
    assert rows[1] == [
        ("not opened", "l1:pending:0"),
        ("in checks", "l1:opened:0"),
        ("at login", "l1:login_started:0"),
    ]
    assert rows[-1][-1] == ("All", "l1:all:0")


def test_filtered_empty_list_in_german() -> None:
    screen = screens.list_screen(DE, ListFacts({"pending": 1}, "failed", 0, []))
    assert screen.text == (
        "<b>1 Einladung</b>\nnicht geöffnet: 1 · in Prüfung: 0 · bei der Anmeldung: 0 · "
        "fehlgeschlagen: 0 · verbunden: 0 · zurückgezogen: 0\n"
        "Angezeigt: <b>fehlgeschlagen</b>\nHier ist nichts."
    )
    assert [len(row) for row in _buttons(screen)] == [3, 3, 1]  # no page to go to


def test_list_filter_words_in_either_language() -> None:
    assert screens.status_named("Not  Opened") == "pending"
    assert screens.status_named("zurückgezogen") == "revoked"
    assert screens.status_named("login_started") == "login_started"
    assert screens.status_named("nonsense") is None


# --- /stats -----------------------------------------------------------------------------------


def test_funnel_in_both_languages() -> None:
    funnel = Funnel(
        created=3,
        opened=3,
        checks_passed=2,
        login_started=2,
        connected=2,
        reasons=[("cancelled", 2), ("no_such_reason", 1)],
    )
    assert screens.funnel_text(EN, funnel) == (
        "📊 <b>Funnel</b>\nCreated: <b>3</b>\n→ Opened: <b>3</b>\n→ Checks passed: <b>2</b>\n"
        "→ Login started: <b>2</b>\n→ Connected: <b>2</b> (67%)\n\n"
        "<b>Top reasons for failed logins</b>\n• cancelled the login: 2\n• no_such_reason: 1"
    )
    empty = Funnel(created=0, opened=0, checks_passed=0, login_started=0, connected=0, reasons=[])
    assert screens.funnel_text(DE, empty).endswith(
        "→ Verbunden: <b>0</b> (0 %)\n\n"
        "<b>Häufigste Gründe für fehlgeschlagene Anmeldungen</b>\nbisher keine"
    )


def test_percent_rounds_half_up() -> None:
    assert [screens.percent(p, w) for p, w in ((2, 3), (1, 2), (1, 3), (0, 0))] == [
        "67",
        "50",
        "33",
        "0",
    ]


# --- inviting and the CSV report --------------------------------------------------------------


def test_csv_report_in_both_languages() -> None:
    report = InviteReport(
        created=[Created(_invite(1, "new.one"), "tok")],
        duplicates=["old.one"],
        invalid=[(4, "no&amp;good")],
        connected=[_invite(2, "linked.one", status=InviteStatus.CONNECTED)],
    )
    assert screens.csv_report(EN, report) == (
        "📋 CSV: <b>1</b> created, <b>2</b> already invited, <b>1</b> invalid.\n"
        "Already invited: @old.one\n"
        "Already connected (to invite them again anyway, use /invite with the handle): "
        "@linked.one\n"
        "Line 4: “no&amp;good” is not a valid Instagram username (or repeats one above)."
    )
    assert screens.csv_report(DE, report).splitlines()[0] == (
        "📋 CSV: <b>1</b> angelegt, <b>2</b> schon eingeladen, <b>1</b> ungültig."
    )


def test_invite_problems_name_the_open_invitation_and_offer_inviting_again() -> None:
    connected = _invite(2, "linked.one", status=InviteStatus.CONNECTED)
    report = InviteReport(duplicates=["old.one"], connected=[connected], open_ids={"old.one": 5})
    screen = screens.invite_problems(EN, report)
    assert screen is not None
    assert screen.text.splitlines()[0] == EN("console.duplicate", handle="old.one", id=5)
    assert _buttons(screen) == [
        [(EN.plain("console.invite_again", handle="linked.one"), InviteAgain(2).pack())]
    ]
    assert screens.invite_problems(EN, InviteReport()) is None


# --- a connection's health (issue 11) -----------------------------------------------------------


def _connection(invitation_id: int = 7, **fields: object) -> Connection:
    values: dict[str, object] = {
        "id": invitation_id,
        "invitation_id": invitation_id,
        "facebook_user_id": "fb-1",
        "page_id": "p-1",
        "page_name": "Anna Bakes",
        "instagram_id": "ig-1",
        "instagram_username": "anna.bakes",
        "permissions": "instagram_basic",
        "created_at": NOW - timedelta(days=40),
        "token_expires_at": NOW + timedelta(days=20),
        "data_access_expires_at": NOW + timedelta(days=12),
    }
    values.update(fields)
    return Connection.model_validate(values)


@pytest.mark.parametrize(
    ("texts", "health", "reason", "expected"),
    [
        (EN, "healthy", None, "🟢 Connected: Instagram @anna.bakes · Page Anna Bakes"),
        (
            EN,
            "renewal_due",
            None,
            "⏳ Connected: Instagram @anna.bakes · Page Anna Bakes · renewal due: access ends "
            "26 Mar 2026",
        ),
        (
            DE,
            "renewal_due",
            None,
            "⏳ Verbunden: Instagram @anna.bakes · Seite Anna Bakes · Erneuerung fällig: "
            "Zugriff endet am 26. März 2026",
        ),
        (EN, "broken", "password_changed", "⚠️ Connection broken: Facebook password changed"),
        (
            DE,
            "broken",
            "page_unpublished",
            "⚠️ Verbindung unterbrochen: Seite nicht mehr veröffentlicht",
        ),
        (EN, "broken", "no_such_reason", "⚠️ Connection broken: reason unknown"),
    ],
)
def test_card_status_says_the_connections_health(
    texts: Texts, health: str, reason: str | None, expected: str
) -> None:
    facts = CardFacts(
        _invite(status=InviteStatus.CONNECTED),
        connection=_connection(health=health, health_reason=reason),
    )
    assert screens.status_line(texts, facts, now=NOW) == expected


def test_every_health_reason_has_a_short_text_in_both_languages() -> None:
    for reason in HealthReason:
        for texts in (EN, DE):
            assert texts.has(f"console.health.reason.{reason.value}"), (texts.language, reason)


def test_list_puts_health_on_top_and_marks_the_rows() -> None:
    invites = [
        _invite(1, "a", status=InviteStatus.CONNECTED),
        _invite(2, "b", status=InviteStatus.CONNECTED),
        _invite(3, "c", status=InviteStatus.CONNECTED),
    ]
    facts = ListFacts(
        {"connected": 3},
        None,
        0,
        invites,
        health=HealthCounts(healthy=1, renewal_due=1, broken=1),
        connections={
            1: _connection(1, health="broken", health_reason="token_expired"),
            2: _connection(2, health="renewal_due"),
            3: _connection(3),
        },
    )
    lines = screens.list_screen(EN, facts).text.split("\n")
    assert lines[2:] == [
        "⚠️ 1 broken · ⏳ 1 renewal due · ✅ 1 healthy · /health",
        "#1 @a · connected · ⚠️ broken",
        "#2 @b · connected · ⏳ renewal due",
        "#3 @c · connected",
    ]
    german = screens.list_screen(DE, facts).text.split("\n")
    assert german[2:4] == [
        "⚠️ 1 unterbrochen · ⏳ 1 zu erneuern · ✅ 1 in Ordnung · /health",
        "#1 @a · verbunden · ⚠️ unterbrochen",
    ]
    healthy = ListFacts({"connected": 1}, None, 0, [], health=HealthCounts(healthy=1))
    assert screens.list_screen(DE, healthy).text.split("\n")[2] == (
        "✅ Die Verbindung ist in Ordnung"
    )
    nothing = ListFacts({"pending": 1}, None, 0, [])
    assert "health" not in screens.list_screen(EN, nothing).text


def test_health_screen_lists_with_remind_buttons_and_pages() -> None:
    items = [
        NeedsAttention(
            _invite(n, f"h{n}", status=InviteStatus.CONNECTED),
            _connection(
                n,
                health="broken",
                health_reason="instagram_unlinked",
                health_changed_at=NOW - timedelta(days=n),
            ),
        )
        for n in range(1, 11)
    ]
    counts = HealthCounts(broken=12)
    assert screens.clamp_health_page(counts, 7) == 1
    screen = screens.health_screen(DE, HealthFacts(counts, 0, items))
    lines = screen.text.split("\n")
    assert lines[0] == "<b>12 Verbindungen brauchen Aufmerksamkeit</b> (neuestes Problem zuerst)"
    assert lines[1] == (
        "⚠️ <b>@h1</b> (#1) · unterbrochen seit 13. März 2026: "
        "Instagram nicht mehr mit der Seite verknüpft"
    )
    rows = _buttons(screen)
    assert rows[0] == [("🔔 @h1 erinnern", RemindHealth(1).pack())]
    assert rows[-1] == [("Mehr ▶️", HealthPage(1).pack())]
    last = screens.health_screen(EN, HealthFacts(counts, 1, items[:2]))
    assert last.text.split("\n")[0] == (
        "<b>12 connections need attention</b> (newest problem first)"
    )
    assert _buttons(last)[-1] == [("◀️ Back", HealthPage(0).pack())]
    for texts, expected in (
        (EN, "All connections are healthy ✅"),
        (DE, "Alle Verbindungen sind in Ordnung ✅"),
    ):
        empty = screens.health_screen(texts, HealthFacts(HealthCounts(healthy=3), 0, []))
        assert empty.text == expected and empty.keyboard is None


def test_stats_count_the_connections_by_health() -> None:
    funnel = Funnel(created=1, opened=1, checks_passed=1, login_started=1, connected=1, reasons=[])
    health = HealthCounts(healthy=4, renewal_due=2, broken=1, disconnected=1, renewed=3)
    assert screens.funnel_text(EN, funnel, health).endswith(
        "\n\n<b>Connections</b>\n✅ Healthy: <b>4</b>\n⏳ Renewal due: <b>2</b>\n"
        "⚠️ Broken: <b>1</b>\n🔌 Disconnected in the last 30 days: <b>1</b>\n"
        "🔁 Kept alive by renewal: <b>3</b>"
    )
    assert screens.funnel_text(DE, funnel, health).endswith(
        "\n\n<b>Verbindungen</b>\n✅ In Ordnung: <b>4</b>\n⏳ Erneuerung fällig: <b>2</b>\n"
        "⚠️ Unterbrochen: <b>1</b>\n🔌 In den letzten 30 Tagen getrennt: <b>1</b>\n"
        "🔁 Durch Erneuerung aktiv gehalten: <b>3</b>"
    )


def test_show_health_lines_and_button() -> None:
    invite = _invite(status=InviteStatus.CONNECTED)
    broken = _connection(
        health="broken",
        health_reason="username_changed",
        health_changed_at=NOW - timedelta(days=2),
        checked_at=NOW - timedelta(hours=1),
        renewed_at=NOW - timedelta(days=30),
    )
    screen = screens.show_screen(
        DE, ShowFacts(CardFacts(invite, connection=broken), [], broken, []), platform="B", now=NOW
    )
    # Broken: no dates it would run until (nothing runs until it works again).
    assert (
        "<b>Zustand:</b> ⚠️ unterbrochen seit 12. März 2026: Instagram-Benutzername geändert\n"
        "Letzte Prüfung: 14. März 2026 14:09 UTC\n"
        "Erneuert am 12. Feb. 2026"
    ) in screen.text
    assert "gültig bis" not in screen.text and "Datenzugriff bis" not in screen.text
    # A rename is the brand's to settle (invite the new name): no Remind for it.
    assert screen.keyboard is None
    unpublished = _connection(health="broken", health_reason="page_unpublished")
    screen = screens.show_screen(
        DE,
        ShowFacts(CardFacts(invite, connection=unpublished), [], unpublished, []),
        platform="B",
        now=NOW,
    )
    assert _buttons(screen) == [[("🔔 @anna.bakes erinnern", RemindHealth(7).pack())]]
    unknown = _connection(token_expires_at=None, data_access_expires_at=None)
    screen = screens.show_screen(
        EN, ShowFacts(CardFacts(invite, connection=unknown), [], unknown, []), platform="B", now=NOW
    )
    assert (
        "<b>Health:</b> ✅ healthy\n"
        "Facebook login valid until unknown · data access until unknown\n"
        "Last check: not checked yet"
    ) in screen.text
    # Healthy: nothing to remind of, and the profile one tap away.
    assert _buttons(screen) == [[("📊 Profile and figures", "pv:7")]]
