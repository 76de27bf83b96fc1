"""What the brand manager's console shows: the live card, the /list page with its buttons, /show
(card, timeline, connection, its health, other invitations), /health, the funnel (/stats), the
CSV import report and the admins' lists. Pure: given the data (gathered first by `bot.console` /
`bot.notices`) and the reader's `Texts`, each returns text or a `Screen`; no I/O, no query while
a text is built."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import MessageLimit

from bot.buttons import ButtonData, RemindHealth, ShowProfile, positive_id
from bot.fit import fit_lines, join_capped, telegram_length
from bot.health import HealthReason, HealthState
from bot.i18n import LANGUAGES, Texts, catalog, day_text, moment_text
from bot.models import (
    Brand,
    BrandPaths,
    Connection,
    ConnectionStatus,
    Invitation,
    InvitationEvent,
    InviteStatus,
    LoginPath,
    Manager,
    Step,
    access_ends,
)
from bot.screens import Screen
from bot.store import ConnectionRecord, Created, Funnel
from bot.store.console import ATTENTION_DAYS, HealthCounts, NeedsAttention, health_of
from bot.timeline import timeline
from bot.verdict import is_valid_handle, normalize_handle

PAGE_SIZE = 10
# Handles named in one line of a CSV report ("already invited: …"); the rest is "and N more".
MAX_LISTED_HANDLES = 50
STATUSES = [s.value for s in InviteStatus]


# --- the console's buttons -----------------------------------------------------------------------


@dataclass(frozen=True)
class ListPage(ButtonData):
    """A /list filter or page button: `l1:<status, or all>:<page>`."""

    prefix: ClassVar[str] = "l1"
    status: str
    page: int

    def __post_init__(self) -> None:
        if self.status != "all" and self.status not in STATUSES:
            raise ValueError(f"no status {self.status!r}")


@dataclass(frozen=True)
class InviteAgain(ButtonData):
    """ "Invite again anyway", with the connected invitation's id: `ia:<id>`."""

    prefix: ClassVar[str] = "ia"
    invitation_id: int

    def __post_init__(self) -> None:
        positive_id("invitation_id", self.invitation_id)


@dataclass(frozen=True)
class HealthPage(ButtonData):
    """A /health page button: `hh1:<page>`."""

    prefix: ClassVar[str] = "hh1"
    page: int


class RevokeChoice(StrEnum):
    WITHDRAW = "y"
    KEEP = "n"


@dataclass(frozen=True)
class ConfirmRevoke(ButtonData):
    """/revoke's question about a connected invitation: `rv1:<id>:<y or n>`."""

    prefix: ClassVar[str] = "rv1"
    invitation_id: int
    choice: RevokeChoice

    def __post_init__(self) -> None:
        positive_id("invitation_id", self.invitation_id)


# --- the data the screens are made of ------------------------------------------------------------


@dataclass
class InviteReport:
    """What an /invite or a CSV file did."""

    created: list[Created] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line or position, raw)
    # Handles not invited because they are connected already (re-inviting is asked for).
    connected: list[Invitation] = field(default_factory=list)
    # The open invitation of each duplicate handle (its id is named in the answer).
    open_ids: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CardFacts:
    """Everything the live card shows besides the invitation itself."""

    invite: Invitation
    link: str = ""  # "" when the token cannot be recovered
    failures: int = 0  # failed logins (a failed invitation's card counts them)
    connection: Connection | ConnectionRecord | None = None
    data_deleted: bool = False  # revoked because the influencer had their data deleted
    at: datetime | None = None  # when the card's news happened; now by default


@dataclass(frozen=True)
class ListFacts:
    counts: dict[str, int]
    status: str | None
    page: int  # clamped to the pages there are (`clamp_page`)
    invites: Sequence[Invitation]
    health: HealthCounts = HealthCounts()
    # The listed invitations' connections, by invitation id (to mark the ones in trouble).
    connections: Mapping[int, Connection] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthFacts:
    """A /health page: the brand's connections that need attention, the newest problem first."""

    counts: HealthCounts
    page: int  # clamped to the pages there are
    items: Sequence[NeedsAttention]


@dataclass(frozen=True)
class ShowFacts:
    card: CardFacts
    events: Sequence[InvitationEvent]
    connection: Connection | None
    others: Sequence[Invitation]


# --- the live card -------------------------------------------------------------------------------


def in_flow_status(t: Texts, invite: Invitation, *, failures: int) -> str:
    """The card's status line of an invitation in the flow (opened, login started, failed)."""
    if invite.status == InviteStatus.FAILED:
        key = f"console.reason_name.{invite.last_reason}"
        reason = t.plain(key) if t.has(key) else (invite.last_reason or "")
        # Repeated failures send one notice; the card counts them (bot.connect).
        if failures > 1:
            return t("console.status.failed_repeated", count=failures, reason=reason)
        return t("console.status.failed", reason=reason)
    if invite.status in (InviteStatus.OPENED, InviteStatus.LOGIN_STARTED):
        if invite.step == Step.LOGIN and invite.path == LoginPath.INSTAGRAM:
            return t("console.status.step_login_instagram")  # two steps on that way in
        return t(f"console.status.step_{invite.step}")
    return t(f"console.status.{invite.status}")


def status_line(t: Texts, facts: CardFacts, *, now: datetime) -> str:
    invite = facts.invite
    status = InviteStatus(invite.status)
    if status == InviteStatus.CONNECTED:
        found = facts.connection
        instagram = found is not None and found.path == LoginPath.INSTAGRAM
        if isinstance(found, Connection) and found.status == ConnectionStatus.DISCONNECTED:
            own = "_instagram" if instagram else ""
            return t(f"console.status.disconnected{own}")
        if isinstance(found, Connection) and found.status == ConnectionStatus.ACTIVE:
            trouble = health_status(t, found)
            if trouble is not None:
                return trouble
        return t(
            # No Page on the Instagram Login path: nothing may read "Page " with no name.
            "console.status.connected_instagram" if instagram else "console.status.connected",
            username=found.instagram_username if found else invite.handle,
            page=found.page_name if found else "",
        )
    if status == InviteStatus.FAILED:
        return in_flow_status(t, invite, failures=facts.failures)
    if status in (InviteStatus.OPENED, InviteStatus.LOGIN_STARTED):
        return in_flow_status(t, invite, failures=0)
    if status == InviteStatus.PENDING and invite.expires_at <= now:
        return t("console.status.expired")
    if status == InviteStatus.REVOKED and facts.data_deleted:
        # Closed because the influencer had their data deleted (/forget, or Facebook's data
        # deletion request), not withdrawn by the brand: the card says so.
        return t("console.status.data_deleted")
    return t(f"console.status.{status.value}")


# --- a connection's health (issue 11) ------------------------------------------------------


def _date(moment: datetime | None, t: Texts) -> str:
    return day_text(t, moment) if moment else t.plain("console.health.unknown")


def reason_text(t: Texts, reason: HealthReason | None, path: str | None = None) -> str:
    """A health reason in a few words, about the influencer (in Instagram's words for an
    Instagram Login connection, where they differ)."""
    if reason is not None and path == LoginPath.INSTAGRAM:
        own = f"health_instagram.console.{reason.value}"
        if t.has(own):
            return t.plain(own)
    key = f"console.health.reason.{reason.value if reason else 'unknown'}"
    return t.plain(key) if t.has(key) else t.plain("console.health.reason.unknown")


def _trouble_since(connection: Connection) -> datetime:
    """When the problem began (as /health orders them): an ended connection's end, else the
    last change of its health."""
    if connection.status != ConnectionStatus.ACTIVE and connection.ended_at is not None:
        return connection.ended_at
    return connection.health_changed_at or connection.created_at


def health_status(t: Texts, connection: Connection) -> str | None:
    """The card's status line of an active connection in trouble; None when it is healthy
    (the card then reads as it always did)."""
    state, reason = health_of(connection)
    if state is HealthState.RENEWAL_DUE:
        ends = access_ends(connection)
        names = {"username": connection.instagram_username, "page": connection.page_name}
        if ends is None:
            return t("console.health.status_renewal_due_undated", **names)
        return t("console.health.status_renewal_due", date=_date(ends, t), **names)
    why = reason_text(t, reason, connection.path)
    if state is HealthState.BROKEN:
        return t("console.health.status_broken", reason=why)
    if state is HealthState.DISCONNECTED:
        return t("console.health.status_disconnected", reason=why)
    return None


def needs_attention(connection: Connection, *, now: datetime) -> bool:
    """Broken, renewal due, or ended on Facebook's side lately (as /health lists them)."""
    if connection.status == ConnectionStatus.DISCONNECTED:
        ended = connection.ended_at or connection.health_changed_at
        return ended is not None and ended >= now - timedelta(days=ATTENTION_DAYS)
    if connection.status != ConnectionStatus.ACTIVE:
        return False
    return health_of(connection)[0] in (HealthState.RENEWAL_DUE, HealthState.BROKEN)


def remindable(connection: Connection) -> bool:
    """Whether reminding the influencer can help: not for a renamed account, which is the
    brand's to settle (invite the new name) or fixes itself when renamed back."""
    return connection.health_reason != HealthReason.USERNAME_CHANGED


def profile_button(t: Texts, invitation_id: int) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        t.plain("profile.button_show"), callback_data=ShowProfile(invitation_id).pack()
    )


def remind_button(t: Texts, invitation_id: int, handle: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        t.plain("console.health.remind", handle=handle),
        callback_data=RemindHealth(invitation_id).pack(),
    )


def health_summary(t: Texts, counts: HealthCounts) -> str | None:
    """/list's first line about the connections: what needs attention (with /health), else
    that all are healthy; None without connections."""
    if counts.attention:
        parts = [
            t.plain(f"console.health.count.{state}", count=n)
            for state, n in (
                (HealthState.BROKEN, counts.broken),
                (HealthState.RENEWAL_DUE, counts.renewal_due),
                (HealthState.DISCONNECTED, counts.disconnected),
                (HealthState.HEALTHY, counts.healthy),
            )
            if n
        ]
        return t("console.health.list_attention", counts=" · ".join(parts))
    if counts.healthy:
        return t("console.health.list_healthy", count=counts.healthy)
    return None


def health_lines(t: Texts, connection: Connection, *, handle: str) -> list[str]:
    """/show's lines about an active connection's health: its state and reason, when access
    ends (not while broken: nothing runs until a reconnect), the last check, the last renewal."""
    if connection.status != ConnectionStatus.ACTIVE:
        return []
    state, reason = health_of(connection)
    since = _date(_trouble_since(connection), t)
    if state is HealthState.RENEWAL_DUE:
        head = t(
            "console.health.show_renewal_due",
            since=since,
            date=_date(access_ends(connection), t),
            handle=handle,
        )
    elif state is HealthState.HEALTHY:
        head = t("console.health.show_healthy")
    else:
        head = t(
            f"console.health.show_{state.value}",
            since=since,
            reason=reason_text(t, reason, connection.path),
        )
    checked = connection.checked_at
    lines: list[str] = [head]
    if state is HealthState.BROKEN:
        # Its access is gone until the influencer reconnects: no dates it would run until.
        pass
    elif connection.path != LoginPath.INSTAGRAM:
        lines.append(
            t("console.health.show_expiry_page", data=_date(connection.data_access_expires_at, t))
            if connection.page_token_encrypted
            else t(
                "console.health.show_expiry",
                token=_date(connection.token_expires_at, t),
                data=_date(connection.data_access_expires_at, t),
            )
        )
    elif state is HealthState.HEALTHY:
        # "Nothing to do" only while it works: a broken one needs the influencer's Reconnect.
        lines.append(
            t("console.health.show_expiry_instagram", token=_date(connection.token_expires_at, t))
        )
    lines.append(
        t("console.health.show_checked", time=moment_text(t, checked))
        if checked
        else t("console.health.show_not_checked")
    )
    if connection.renewed_at is not None:
        lines.append(t("console.health.show_renewed", date=_date(connection.renewed_at, t)))
    return lines


# --- the card --------------------------------------------------------------------------------


def card(
    t: Texts, invite: Invitation, status: str, *, link: str, at: datetime, now: datetime
) -> str:
    """The card's text with its status line already made. A withdrawn or expired invitation's
    card no longer offers its link (it would not open); a connected one keeps it, to look up."""
    assert invite.id is not None
    closed = invite.status == InviteStatus.REVOKED or (
        invite.status == InviteStatus.PENDING and invite.expires_at <= now
    )
    # Older than today: with the date, so that "14:02" does not read as today's.
    stamp = at.strftime("%H:%M") if at.date() == now.date() else moment_text(t, at)
    return t(
        "console.card",
        handle=invite.handle,
        id=invite.id,
        note=f" · {invite.note}" if invite.note else "",
        status=status,
        link="" if closed or not link else f"\n{link}",
        time=stamp,
    )


def card_text(t: Texts, facts: CardFacts, *, now: datetime) -> str:
    return card(
        t,
        facts.invite,
        status_line(t, facts, now=now),
        link=facts.link,
        at=facts.at or now,
        now=now,
    )


# --- /list ---------------------------------------------------------------------------------------


def status_named(words: str) -> str | None:
    """The status a /list filter word names: its label on the screen in any language (as the
    buttons show it), or its internal code; None for anything else."""
    wanted = " ".join(words.casefold().split())
    if not wanted:
        return None
    for status in STATUSES:
        names = {status, status.replace("_", " ")}
        names.update(
            " ".join(catalog(language)[f"console.status_name.{status}"].casefold().split())
            for language in LANGUAGES
        )
        if wanted in names:
            return status
    return None


def list_usage(t: Texts) -> Screen:
    labels = ", ".join(t.plain(f"console.status_name.{s}") for s in STATUSES)
    return Screen(t("console.list.usage", statuses=labels))


def _total(counts: dict[str, int], status: str | None) -> int:
    return sum(counts.values()) if status is None else counts.get(status, 0)


def clamp_page(counts: dict[str, int], status: str | None, page: int) -> int:
    """A page past the end (the list shrank) is the last page."""
    return max(0, min(page, max(0, (_total(counts, status) - 1) // PAGE_SIZE)))


def _list_button(label: str, status: str, page: int) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=ListPage(status, page).pack())


def list_screen(t: Texts, facts: ListFacts) -> Screen:
    counts, status, page = facts.counts, facts.status, facts.page
    total = _total(counts, status)
    summary = " · ".join(
        f"{t.plain(f'console.status_name.{s}')}: {counts.get(s, 0)}" for s in STATUSES
    )
    everything = sum(counts.values())
    lines: list[str] = [
        t("console.list.header", total=everything, summary=summary, count=everything)
    ]
    health = health_summary(t, facts.health)
    if health is not None:
        lines.append(health)
    if status:
        lines.append(t("console.list.filtered", status=t.plain(f"console.status_name.{status}")))
    for invite in facts.invites:
        words = t.plain(f"console.status_name.{invite.status}")
        connection = facts.connections.get(invite.id or 0)
        if invite.status == InviteStatus.CONNECTED and connection is not None:
            state = health_of(connection)[0]
            if state is not HealthState.HEALTHY:
                words += " · " + t.plain(f"console.health.state.{state}")
            if connection.path == LoginPath.INSTAGRAM:
                words += " · " + path_name(t, connection.path)
        lines.append(t("console.list.line", id=invite.id, handle=invite.handle, status=words))
    if not facts.invites:
        lines.append(t("console.list.empty"))
    nav: list[InlineKeyboardButton] = []
    code = status or "all"
    if page > 0:
        nav.append(_list_button(t.plain("console.list.prev"), code, page - 1))
    if (page + 1) * PAGE_SIZE < total:
        nav.append(_list_button(t.plain("console.list.next"), code, page + 1))
    # A filter for every status of the counts line, in the same order, then "all".
    filters_row = [_list_button(t.plain(f"console.status_name.{s}"), s, 0) for s in STATUSES]
    filters_row.append(_list_button(t.plain("console.list.all"), "all", 0))
    rows = [nav] if nav else []
    rows.extend(filters_row[i : i + 3] for i in range(0, len(filters_row), 3))
    return Screen("\n".join(lines), InlineKeyboardMarkup(rows))


# --- /show, /revoke --------------------------------------------------------------------------


def other_invitations(t: Texts, invite: Invitation, others: Sequence[Invitation]) -> list[str]:
    """The handle's other invitations in this brand (/show picked the most relevant one)."""
    if not others:
        return []
    return [
        t("console.show.others", handle=invite.handle),
        *(
            t(
                "console.show.other",
                id=other.id,
                status=t.plain(f"console.status_name.{other.status}"),
                date=day_text(t, other.created_at),
            )
            for other in others
        ),
    ]


def show_screen(t: Texts, facts: ShowFacts, *, platform: str, now: datetime) -> Screen:
    """The card as of the invitation's last change, its history and its connection."""
    invite = facts.card.invite
    head = [card_text(t, facts.card, now=now), t("console.show.timeline")]
    tail: list[str] = []
    connection = facts.connection
    if connection is not None:
        # A sentence, with the ids labelled (what Meta's tools and support ask for).
        ended = connection.ended_at
        # An Instagram Login connection has no Page: its own sentences, without one.
        own = "_instagram" if connection.path == LoginPath.INSTAGRAM else ""
        tail.append(
            t(
                f"console.show.connection{own}"
                if connection.status == ConnectionStatus.ACTIVE or ended is None
                else f"console.show.connection_{connection.status}{own}",
                date=day_text(t, connection.created_at),
                ended=day_text(t, ended) if ended else "",
                page=connection.page_name,
                page_id=connection.page_id,
                username=connection.instagram_username,
                instagram_id=connection.instagram_id,
            )
        )
        tail.extend(health_lines(t, connection, handle=invite.handle))
    tail.extend(other_invitations(t, invite, facts.others))
    # The newest events are what the manager asks about: older ones give way first.
    room = MessageLimit.MAX_TEXT_LENGTH - telegram_length("\n".join([*head, *tail])) - 2
    # Where an event's way in cannot be read off the events (details erased), the connection's.
    way = connection.path if connection is not None else invite.path
    events = timeline(
        t, facts.events, handle=invite.handle, platform=platform, room=room, path=way
    )
    keyboard = None
    if connection is not None and invite.id is not None and invite.status == InviteStatus.CONNECTED:
        rows = []
        if needs_attention(connection, now=now) and remindable(connection):
            rows.append([remind_button(t, invite.id, invite.handle)])
        if (
            connection.status == ConnectionStatus.ACTIVE
            and health_of(connection)[0] is not HealthState.BROKEN
        ):
            # What the brand connected for: the profile and its figures (`bot.handlers.profiles`).
            rows.append([profile_button(t, invite.id)])
        keyboard = InlineKeyboardMarkup(rows) if rows else None
    return Screen("\n".join([*head, *events, *tail]), keyboard)


def revoke_question(t: Texts, invite: Invitation, others: Sequence[Invitation]) -> Screen:
    """Removing a live connection is not undone by a typo: /revoke asks first, naming which
    invitation (a handle may have several) and listing the others."""
    assert invite.id is not None
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    t.plain("console.revoke.confirm_yes"),
                    callback_data=ConfirmRevoke(invite.id, RevokeChoice.WITHDRAW).pack(),
                ),
                InlineKeyboardButton(
                    t.plain("console.revoke.confirm_no"),
                    callback_data=ConfirmRevoke(invite.id, RevokeChoice.KEEP).pack(),
                ),
            ]
        ]
    )
    question = t("console.revoke.confirm", handle=invite.handle, ref=invite.id)
    return Screen("\n".join([question, *other_invitations(t, invite, others)]), keyboard)


# --- /health ----------------------------------------------------------------------------------


def clamp_health_page(counts: HealthCounts, page: int) -> int:
    return max(0, min(page, max(0, (counts.attention - 1) // PAGE_SIZE)))


def _attention_line(t: Texts, item: NeedsAttention) -> str:
    invite, connection = item.invitation, item.connection
    state, reason = health_of(connection)
    names = {"handle": invite.handle, "id": invite.id}
    if state is HealthState.RENEWAL_DUE:
        return t("console.health.item_renewal_due", date=_date(access_ends(connection), t), **names)
    return t(
        "console.health.item_disconnected"
        if state is HealthState.DISCONNECTED
        else "console.health.item_broken",
        since=_date(_trouble_since(connection), t),
        reason=reason_text(t, reason, connection.path),
        **names,
    )


def health_screen(t: Texts, facts: HealthFacts) -> Screen:
    """The connections that need attention, the newest problem first, each with a button that
    reminds the influencer; paged like /list."""
    total = facts.counts.attention
    if not facts.items:
        return Screen(t("console.health.none"))
    lines: list[str] = [t("console.health.header", count=total)]
    lines.extend(_attention_line(t, item) for item in facts.items)
    lines.append("")
    lines.append(t("console.health.hint"))
    rows: list[list[InlineKeyboardButton]] = []
    for item in facts.items:
        invite = item.invitation
        assert invite.id is not None
        if remindable(item.connection):
            rows.append([remind_button(t, invite.id, invite.handle)])
    nav: list[InlineKeyboardButton] = []
    page = facts.page
    if page > 0:
        nav.append(
            InlineKeyboardButton(
                t.plain("console.list.prev"), callback_data=HealthPage(page - 1).pack()
            )
        )
    if (page + 1) * PAGE_SIZE < total:
        nav.append(
            InlineKeyboardButton(
                t.plain("console.list.next"), callback_data=HealthPage(page + 1).pack()
            )
        )
    if nav:
        rows.append(nav)
    # Telegram refuses an empty keyboard: none when there is no button.
    return Screen("\n".join(lines), InlineKeyboardMarkup(rows) if rows else None)


# --- inviting ------------------------------------------------------------------------------------


def again_keyboard(t: Texts, connected: Sequence[Invitation]) -> InlineKeyboardMarkup | None:
    """One "invite again anyway" button per connected handle."""
    rows = []
    for invite in connected:
        assert invite.id is not None
        data = InviteAgain(invite.id).pack()
        label = t.plain("console.invite_again", handle=invite.handle)
        rows.append([InlineKeyboardButton(label, callback_data=data)])
    return InlineKeyboardMarkup(rows) if rows else None


def duplicate(t: Texts, handle: str, report: InviteReport) -> str:
    return t("console.duplicate", handle=handle, id=report.open_ids.get(handle, "?"))


def invite_problems(t: Texts, report: InviteReport) -> Screen | None:
    """/invite's answer about the handles that got no card (None: all did), in one message
    (one chat takes about one message per second)."""
    problems: list[str] = [t("invite.invalid_handle", handle=raw) for _, raw in report.invalid]
    problems.extend(duplicate(t, handle, report) for handle in report.duplicates)
    problems.extend(
        t("console.already_connected", handle=i.handle, id=i.id) for i in report.connected
    )
    if not problems:
        return None
    return Screen("\n".join(problems), again_keyboard(t, report.connected))


def _handles(t: Texts, handles: Sequence[str]) -> str:
    """A report's list of handles: a file has up to 1000 rows, a message room for far fewer."""
    return join_capped(handles, MAX_LISTED_HANDLES, lambda n: t.plain("list.and_more", count=n))


def csv_report(t: Texts, report: InviteReport) -> str:
    lines: list[str] = [
        t(
            "console.csv.report",
            created=len(report.created),
            duplicates=len(report.duplicates) + len(report.connected),
            invalid=len(report.invalid),
        )
    ]
    if report.duplicates:
        lines.append(
            t("console.csv.duplicates", handles=_handles(t, [f"@{h}" for h in report.duplicates]))
        )
    if report.connected:
        handles = _handles(t, [f"@{i.handle}" for i in report.connected])
        lines.append(t("console.csv.connected", handles=handles))
    for line, raw in report.invalid:
        lines.append(t("console.csv.invalid_line", line=line, value=html.unescape(raw)))
    # Whole lines: a cut in the middle of one could cut a tag and Telegram would refuse it all.
    return fit_lines(lines, MessageLimit.MAX_TEXT_LENGTH, lambda n: t("console.csv.more", count=n))


# --- /stats --------------------------------------------------------------------------------------


def percent(part: int, whole: int) -> str:
    """Rounded half up, in whole numbers: 2 of 3 is 67 %."""
    return str((200 * part + whole) // (2 * whole)) if whole else "0"


def funnel_text(t: Texts, f: Funnel, health: HealthCounts | None = None) -> str:
    reasons = "\n".join(
        t(
            "console.stats.reason",
            reason=t.plain(f"console.reason_name.{r}") if t.has(f"console.reason_name.{r}") else r,
            count=n,
        )
        for r, n in f.reasons
    ) or t("console.stats.no_failures")
    text: str = t(
        "console.stats.text",
        created=f.created,
        opened=f.opened,
        checks=f.checks_passed,
        login=f.login_started,
        connected=f.connected,
        rate=percent(f.connected, f.created),
        reasons=reasons,
    )
    if f.paths:
        # How the brand's active connections were made (issue 13).
        text += "\n" + t(
            "console.stats.paths",
            facebook=f.paths.get(LoginPath.FACEBOOK.value, 0),
            instagram=f.paths.get(LoginPath.INSTAGRAM.value, 0),
        )
    if health is None:
        return text
    return text + "\n\n" + health_stats(t, health)


def health_stats(t: Texts, health: HealthCounts) -> str:
    """/stats about the connections: how many by health, and how many a renewal kept alive."""
    return t(
        "console.health.stats",
        healthy=health.healthy,
        renewal_due=health.renewal_due,
        broken=health.broken,
        disconnected=health.disconnected,
        days=ATTENTION_DAYS,
        renewed=health.renewed,
    )


# --- the admins' lists ---------------------------------------------------------------------------


def fit(t: Texts, lines: Sequence[str]) -> str:
    """A list of any length as one message: whole lines, then "and N more"."""
    return fit_lines(lines, MessageLimit.MAX_TEXT_LENGTH, lambda n: t("list.and_more", count=n))


def brands_text(t: Texts, brands: Sequence[tuple[Brand, int]]) -> str:
    """Every brand with its number of managers."""
    lines: list[str] = [t("console.admin.brands_header")]
    for brand, count in brands:
        lines.append(
            t("console.admin.brand_line", id=brand.id, name=brand.name, managers=count, count=count)
        )
    return fit(t, lines)


def managers_text(t: Texts, brand: Brand, managers: Sequence[Manager]) -> str:
    if not managers:
        return t("console.admin.managers_none", brand=brand.name, id=brand.id)
    lines: list[str] = [t("console.admin.managers_header", brand=brand.name)]
    lines.extend(t("console.admin.manager_line", name=m.name, id=m.telegram_id) for m in managers)
    return fit(t, lines)


def paths_text(t: Texts, brand: Brand, *, configured: bool, changed: bool) -> str:
    """`/paths`: the ways in the brand allows, what that means, and (when the second Meta app
    is not configured) that Instagram Login is not offered anywhere yet."""
    setting = _brand_paths(brand.login_paths)
    values = {
        "brand": brand.name,
        "id": brand.id,
        "setting": t.plain(f"console.admin.paths_name.{setting.value}"),
        "meaning": t(f"console.admin.paths_meaning.{setting.value}"),
    }
    lines = [t("console.admin.paths_set" if changed else "console.admin.paths_show", **values)]
    if not configured and setting is not BrandPaths.FACEBOOK:
        lines.append(t("console.admin.paths_not_configured"))
    if not changed:
        lines.append(t("console.admin.paths_change", id=brand.id))
    return "\n\n".join(lines)


def _brand_paths(value: str | None) -> BrandPaths:
    try:
        return BrandPaths(value or BrandPaths.BOTH)
    except ValueError:
        return BrandPaths.BOTH


def path_name(t: Texts, path: str | None) -> str:
    """A connection's way in, in a word or two ("Facebook Page", "Instagram Login")."""
    key = f"console.path.{path or LoginPath.FACEBOOK.value}"
    return t.plain(key) if t.has(key) else (path or "")


def ref_text(ref: str) -> str:
    """What a manager typed to name an invitation, as "not found" repeats it: a number as #17,
    a handle as @anna (the profile's address too), anything else cut to 40 characters."""
    ref = ref.strip()
    bare = ref.lstrip("#")
    if bare.isascii() and bare.isdigit():
        return f"#{bare[:12]}"
    handle = normalize_handle(ref)
    if is_valid_handle(handle):
        return f"@{handle}"
    return ref[:40]
