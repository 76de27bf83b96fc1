"""Messages within Telegram's size limits, built from whole lines.

Telegram refuses a text over `MessageLimit.MAX_TEXT_LENGTH` (a caption over
`MessageLimit.CAPTION_LENGTH`) with 400, and counts after parsing the HTML, in UTF-16 code units.
The length of the HTML source in UTF-16 units is never less than that, so measuring the source is
safe without parsing it. Lists that can grow without bound (Pages, handles, timeline events) are
cut at whole items or lines with "and N more", never in the middle of a tag or an entity.

When Telegram still refuses a text for its length or its markup, `plain_version` is what is sent
instead: the same words without markup, cut at a whole line with "…".
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence

from telegram.constants import MessageLimit

__all__ = ["fit_lines", "join_capped", "plain_version", "refused_for_form", "telegram_length"]

ELLIPSIS = "…"
_TAG = re.compile(r"<[^>]*>")


def telegram_length(text: str) -> int:
    """Telegram's measure: UTF-16 code units (an emoji outside the BMP counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def fit_lines(
    lines: Sequence[str],
    limit: int = MessageLimit.MAX_TEXT_LENGTH,
    more: Callable[[int], str] | None = None,
    *,
    head: Sequence[str] = (),
    tail: Sequence[str] = (),
    keep_end: bool = False,
    sep: str = "\n",
) -> str:
    """`head`, then as many whole `lines` as fit in `limit`, then `tail`, joined with `sep`. Lines
    that do not fit are left out and `more(n)` says how many: after the kept lines, or with
    `keep_end` (the newest at the end matter most, as in a timeline) the lines are kept from the
    end and `more(n)` comes before them. Each item is kept or dropped whole, so a tag opened in
    a line is closed in it.

    When `head` and `tail` leave no room at all, they are treated like the other lines."""
    whole = sep.join([*head, *lines, *tail])
    if telegram_length(whole) <= limit:
        return whole
    say_more = more or (lambda _n: "")
    sep_len = telegram_length(sep)
    fixed = [*head, *tail]
    fixed_len = sum(telegram_length(line) for line in fixed)
    order = list(reversed(lines)) if keep_end else list(lines)
    best: list[str] | None = None
    used = 0
    for kept in range(len(order) + 1):
        if kept:
            used += telegram_length(order[kept - 1])
        note = say_more(len(order) - kept)
        parts = len(fixed) + kept + (1 if note else 0)
        size = fixed_len + used + telegram_length(note) + sep_len * max(0, parts - 1)
        if size > limit:
            break
        chosen = lines[len(lines) - kept :] if keep_end else lines[:kept]
        notes = [note] if note else []
        body = [*notes, *chosen] if keep_end else [*chosen, *notes]
        best = [*head, *body, *tail]
    if best is not None:
        return sep.join(best)
    if fixed:
        return fit_lines([*head, *lines, *tail], limit, more, keep_end=keep_end, sep=sep)
    note = say_more(len(lines))
    return note if telegram_length(note) <= limit else _cut(note, limit)


def join_capped(
    items: Sequence[str], most: int, more: Callable[[int], str], *, sep: str = ", "
) -> str:
    """At most `most` items joined with `sep`, then `more(n)` for the n left out: "@a, @b and 3
    more" (on a line of its own when `sep` breaks lines)."""
    if len(items) <= most:
        return sep.join(items)
    gap = sep if "\n" in sep else " "
    return f"{sep.join(items[:most])}{gap}{more(len(items) - most)}"


def plain_version(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> str:
    """The HTML `text` as plain text (tags removed, entities decoded) within `limit`: whole lines
    from the start, then "…"."""
    plain = html.unescape(_TAG.sub("", text)).strip()
    if telegram_length(plain) <= limit:
        return plain
    kept: list[str] = []
    size = telegram_length(ELLIPSIS)
    for line in plain.split("\n"):
        size += telegram_length(line) + 1
        if size > limit:
            break
        kept.append(line)
    if not any(line.strip() for line in kept):
        return _cut(plain, limit)  # not even the first line fits: cut inside it
    return "\n".join(kept).rstrip() + "\n" + ELLIPSIS


def refused_for_form(description: str) -> bool:
    """Telegram's 400 for a text it cannot take as it is: too long ("message is too long",
    "message caption is too long", "text is too long") or markup it cannot parse ("can't parse
    entities: …")."""
    words = description.lower()
    return "too long" in words or "parse entities" in words or "entities too long" in words


def _cut(text: str, limit: int) -> str:
    """Plain text cut at the last space that fits, then "…" (for a single line too long)."""
    room = limit - telegram_length(ELLIPSIS)
    out = []
    size = 0
    for char in text:
        size += telegram_length(char)
        if size > room:
            break
        out.append(char)
    head = "".join(out)
    if " " in head[len(head) // 2 :]:
        head = head[: head.rindex(" ")]
    return head.rstrip() + ELLIPSIS
