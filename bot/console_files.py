"""The console's files: handles as managers paste them, the CSV they upload, the links CSV and
the export CSV they get back, and the QR code of a link. Pure: no queries, no Telegram."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import segno

from bot.console_screens import reason_text
from bot.i18n import Texts
from bot.models import Connection, ConnectionStatus, Invitation, InvitationEvent, InviteStatus
from bot.store.console import Created, NewInvitation, health_of
from bot.store.profiles import Figures
from bot.verdict import is_valid_handle, normalize_handle

MAX_CSV_BYTES = 256 * 1024
MAX_CSV_ROWS = 1000
# How much of a rejected value an answer quotes; longer ones are cut and end in "…".
MAX_QUOTED = 40
# Between handles as managers paste them: spaces, line breaks, commas, semicolons.
_HANDLE_SEPARATORS = re.compile(r"[\s,;]+")
_BULLETS = "•·*-–—‣◦▪"
_CSV_DELIMITERS = ",;\t"
# A spreadsheet runs a cell starting with one of these as a formula (OWASP, CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class CsvProblem(Exception):
    """The whole file is refused (nothing was created); the message is a catalog key."""


def quoted(raw: str) -> str:
    """A rejected value as an answer shows it: at most MAX_QUOTED characters, "…" when cut."""
    return raw if len(raw) <= MAX_QUOTED else raw[: MAX_QUOTED - 1] + "…"


def safe_cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: one starting like a formula gets a leading "'"
    (OWASP's advice against CSV injection). Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_delimiter(text: str) -> str:
    """The first cell of a row is a handle, which never holds a comma, semicolon or tab: the
    first of them outside quotes in the file separates the cells. German spreadsheet programs
    write ';' and keep commas inside notes."""
    quoted_ = False
    for char in text:
        if char == '"':
            quoted_ = not quoted_
        elif not quoted_ and char in _CSV_DELIMITERS:
            return char
    return ","


def split_handles(words: Sequence[str]) -> list[str]:
    """`@a @b`, `@a, @b`, `@a,@b`, one per line, a pasted bullet list (`• @a`): the
    handles, without the separators and bullets."""
    handles = []
    for word in _HANDLE_SEPARATORS.split(" ".join(words)):
        # A bullet on its own, or glued to the handle ("•@a", "-@a"): no handle starts so.
        handle = word.lstrip(_BULLETS) if word.lstrip(_BULLETS)[:1] in ("", "@") else word
        if handle:
            handles.append(handle)
    return handles


def parse_handles(words: Sequence[str]) -> tuple[list[NewInvitation], list[tuple[int, str]]]:
    wanted: list[NewInvitation] = []
    invalid: list[tuple[int, str]] = []
    seen: set[str] = set()
    for position, word in enumerate(split_handles(words), start=1):
        handle = normalize_handle(word)
        if not is_valid_handle(word):
            invalid.append((position, quoted(word)))
        elif handle not in seen:
            seen.add(handle)
            wanted.append(NewInvitation(handle))
    return wanted, invalid


def parse_csv(data: bytes) -> tuple[list[NewInvitation], list[tuple[int, str]]]:
    """Rows of `handle[,note]`; an optional header row naming `handle`. A file that is not
    text CSV, or too large, is refused whole. UTF-8 first; else Windows-1252, which German
    Excel writes for "CSV (Trennzeichen-getrennt)" unless "CSV UTF-8" is chosen."""
    if len(data) > MAX_CSV_BYTES:
        raise CsvProblem("console.csv.too_big")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise CsvProblem("console.csv.not_text") from None
    if "\x00" in text:
        raise CsvProblem("console.csv.not_text")
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=_csv_delimiter(text), strict=True))
    except csv.Error:
        raise CsvProblem("console.csv.malformed") from None
    lines: list[tuple[int, list[str]]] = []
    for line, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if line == 1 and cells[0].lower() in ("handle", "instagram", "username", "@handle"):
            continue
        lines.append((line, cells))
    # Rows that name someone count, with or without a header row.
    if len(lines) > MAX_CSV_ROWS:
        raise CsvProblem("console.csv.too_many")
    wanted: list[NewInvitation] = []
    invalid: list[tuple[int, str]] = []
    seen: set[str] = set()
    for line, cells in lines:
        handle = normalize_handle(cells[0])
        if not is_valid_handle(cells[0]) or handle in seen:
            invalid.append((line, quoted(cells[0])))
            continue
        seen.add(handle)
        wanted.append(NewInvitation(handle, cells[1][:256] if len(cells) > 1 else None))
    if not wanted and not invalid:
        raise CsvProblem("console.csv.empty")
    return wanted, invalid


def qr_png(link: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(link, error="m").save(buffer, kind="png", scale=8, border=3)
    return buffer.getvalue()


def links_csv(created: Sequence[Created], link: Callable[[str], str]) -> bytes:
    """The new invitations with their links (`link` makes one from a token)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["handle", "note", "link"])
    for c in created:
        writer.writerow(
            [
                safe_cell(c.invitation.handle),
                safe_cell(c.invitation.note or ""),
                link(c.token),
            ]
        )
    return out.getvalue().encode("utf-8")


# `status_code` of a connected invitation whose connection has ended.
DISCONNECTED = "disconnected"


def export_csv(
    invites: Sequence[Invitation],
    events: Mapping[int, Sequence[InvitationEvent]],
    connections: Mapping[int, Connection],
    t: Texts,
    figures: Mapping[int, Figures] | None = None,
) -> bytes:
    """A brand's invitations, one row each, with when each step was first reached and what was
    connected. `status` says it in the reader's language, as the chat does ("not opened",
    "withdrawn"); `status_code` is the stable code, for programs: the invitation's status, or
    ``disconnected`` for a connected invitation whose connection has ended (the app removed).
    The connection's health closes each row (added later: the columns before them keep their
    places): `health` and `health_reason` in the reader's words as the console says them
    ("broken", "a permission was removed"), when its data access ends, when it was last checked,
    then `health_code` and `health_reason_code` (stable codes, as `bot.health` names them) and
    when the token the last check read expires. Then what the brand sees (issue 12), from the
    last read of the profile (`figures`, by connection id): the current followers, the accounts
    reached in the last 30 days (each once, as Instagram counts them), the engagement rate in
    percent with the reader's decimal mark (2.9 / 2,9: a German spreadsheet reads 0.029 as 29)
    and when they were read. Last, `path`: the way the connection was made (``facebook``: a
    Facebook Page; ``instagram``: Instagram Login, whose `page_id` and `page_name` are empty).
    Times are ISO 8601 in UTC; a cell is empty when the value is unknown."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
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
            "followers_current",
            "reach_30d",
            "engagement_rate_percent",
            "figures_read_at",
            "path",
        ]
    )

    def first(invitation_id: int, kind: str, detail: str | None = None) -> str:
        for e in events.get(invitation_id, []):
            if e.kind == kind and (detail is None or e.detail == detail):
                return e.at.isoformat(timespec="seconds")
        return ""

    for i in sorted(invites, key=lambda i: i.id or 0):
        assert i.id is not None
        c = connections.get(i.id)
        state, reason = health_of(c) if c else (None, None)
        # Connected once, but its connection has ended (the app removed): not counted as live.
        ended = (
            i.status == InviteStatus.CONNECTED
            and c is not None
            and c.status != ConnectionStatus.ACTIVE
        )
        row: list[object] = [
            i.id,
            i.handle,
            i.note or "",
            (
                t.plain("console.export.health.disconnected")
                if ended
                else t.plain(f"console.status_name.{i.status}")
            ),
            DISCONNECTED if ended else i.status,
            i.last_reason or "",
            i.created_at.isoformat(timespec="seconds"),
            first(i.id, "opened"),
            first(i.id, "login_started"),
            first(i.id, "verdict", "connected"),
            i.updated_at.isoformat(timespec="seconds"),
            c.page_id if c else "",
            c.page_name if c else "",
            c.instagram_id if c else "",
            c.instagram_username if c else "",
            c.followers_count if c and c.followers_count is not None else "",
            t.plain(f"console.export.health.{state}") if state else "",
            reason_text(t, reason, c.path if c else None) if reason else "",
            _iso(c.data_access_expires_at if c else None),
            _iso(c.checked_at if c else None),
            state or "",
            reason or "",
            _iso(c.token_expires_at if c else None),
            *_figures(t, (figures or {}).get(c.id) if c and c.id is not None else None),
            c.path if c else "",
        ]
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue().encode("utf-8")


def _figures(t: Texts, read: Figures | None) -> list[object]:
    if read is None:
        return ["", "", "", ""]
    rate = read.engagement_per_mille
    return [
        "" if read.followers_count is None else read.followers_count,
        "" if read.reach_30d is None else read.reach_30d,
        "" if rate is None else f"{rate / 10:.1f}".replace(".", t.plain("number.decimal")),
        _iso(read.fetched_at),
    ]


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""
