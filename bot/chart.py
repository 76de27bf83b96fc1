"""The profile chart (issue 12): one image with the account's picture and name, its reach day by
day over 30 days, and its followers by age and gender and by country. The numbers themselves
come as text beside it (`bot.profile_screens`); the chart is for looking.

matplotlib is imported here only, inside `render`: the bot starts and idles without it (~40 MB
and half a second when loaded). Drawing takes a few hundred milliseconds of CPU, so callers run
`render` in a worker thread (`render_async`); matplotlib's pyplot state is never used (a Figure
of its own per chart), so charts may be drawn in several threads at once.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.insights import Profile

# The product's colours (the playground's accent and a calm second one).
_ACCENT = "#2f6fde"
_SECOND = "#e0777d"
_THIRD = "#9aa3ad"
_INK = "#1f2933"
_MUTED = "#6b7785"


@dataclass(frozen=True)
class ChartTexts:
    """Every word on the chart, in the reader's language (`bot.profile_screens.chart_texts`)."""

    followers: str  # "{count} followers"
    reach_title: str
    reach_gap: str | None  # why there is no reach series, or None
    age_title: str
    women: str
    men: str
    other: str
    countries_title: str
    audience_gap: str | None  # why there are no demographics, or None
    short_date: Callable[[date], str]  # "24 Nov" / "24.11."
    number: Callable[[int], str]  # 12,400 / 12.400
    compact: Callable[[int], str]  # an axis label: 800, 12.5K, 2.5M / 800, 12,5 Tsd., 2,5 Mio.


def title_and_line(profile: Profile, texts: ChartTexts) -> tuple[str, str]:
    """The header's two lines: the account's name (or @username when the name only repeats it),
    then @username (unless it is the title already) and the followers."""
    account = profile.account
    name = shown_name(account.name, account.username)
    title = name or f"@{account.username}"
    parts = [f"@{account.username}"] if name else []
    if account.followers is not None:
        parts.append(texts.followers.format(count=texts.number(account.followers)))
    return title, "  ·  ".join(parts)


def shown_name(name: str | None, username: str) -> str | None:
    """The account's name when it says more than its username (on the Facebook Page way, Graph
    often hands the username as the name): compared case-insensitively, without a leading @."""
    if not name or not name.strip():
        return None
    if name.strip().lstrip("@").casefold() == username.lstrip("@").casefold():
        return None
    return name.strip()


def render(profile: Profile, texts: ChartTexts) -> bytes:
    """The chart as PNG."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    figure = Figure(figsize=(9, 8.6), dpi=110, facecolor="white")
    # The header is a fixed band at the top; the charts fill the rest, with room on the left
    # for the axis labels (compact, so "987M" fits as well as "80").
    grid = figure.add_gridspec(
        2,
        2,
        height_ratios=(1.0, 1.15),
        hspace=0.32,
        wspace=0.3,
        left=0.1,
        right=0.97,
        top=0.80,
        bottom=0.06,
    )
    _header(figure, profile, texts)
    axis_label = FuncFormatter(lambda v, _: texts.compact(int(round(v))))

    reach = figure.add_subplot(grid[0, :])
    _frame(reach, texts.reach_title)
    days = profile.activity.reach
    if days:
        labels = [date.fromisoformat(d.day) for d in days]
        reach.bar(range(len(days)), [d.value for d in days], color=_ACCENT, width=0.75)
        ticks = list(range(0, len(days), 7))
        reach.set_xticks(ticks, [texts.short_date(labels[i]) for i in ticks])
        reach.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        reach.yaxis.set_major_formatter(axis_label)
    else:
        _empty(reach, texts.reach_gap or "")

    ages = figure.add_subplot(grid[1, 0])
    places = figure.add_subplot(grid[1, 1])
    _frame(ages, texts.age_title)
    _frame(places, texts.countries_title)
    audience = profile.audience
    by_age = audience.by_age()
    if by_age:
        names = list(by_age)
        positions = list(range(len(names)))
        women = [by_age[a].get("F", 0) for a in names]
        men = [by_age[a].get("M", 0) for a in names]
        other = [by_age[a].get("U", 0) for a in names]
        height = 0.38
        ages.barh(
            [p - height / 2 for p in positions], women, height, color=_SECOND, label=texts.women
        )
        ages.barh([p + height / 2 for p in positions], men, height, color=_ACCENT, label=texts.men)
        if any(other):
            ages.barh(positions, other, 0.15, color=_THIRD, label=texts.other)
        ages.set_yticks(positions, [n.replace("-", "–") for n in names])
        ages.invert_yaxis()
        ages.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ages.xaxis.set_major_formatter(axis_label)
        ages.legend(frameon=False, fontsize=8, loc="lower right")
    else:
        _empty(ages, texts.audience_gap or "")
    if audience.countries:
        total = sum(n for *_, n in audience.age_gender) or sum(s.value for s in audience.countries)
        shares = [s.value / total * 100 if total else 0 for s in audience.countries]
        places.barh(range(len(shares)), shares, color=_ACCENT, height=0.6)
        places.set_yticks(range(len(shares)), [s.label for s in audience.countries])
        places.invert_yaxis()
        places.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        places.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f} %"))
    else:
        _empty(places, texts.audience_gap or "")

    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


async def render_async(profile: Profile, texts: ChartTexts) -> bytes:
    return await asyncio.to_thread(render, profile, texts)


def _frame(axes: Any, title: str) -> None:
    axes.set_title(title, loc="left", fontsize=11, color=_INK, fontweight="bold")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.tick_params(colors=_MUTED, labelsize=8)


def _empty(axes: Any, why: str) -> None:
    axes.set_xticks([])
    axes.set_yticks([])
    for side in ("left", "bottom"):
        axes.spines[side].set_visible(False)
    axes.text(
        0.5,
        0.5,
        _wrap(why, 38),
        ha="center",
        va="center",
        fontsize=9,
        color=_MUTED,
        transform=axes.transAxes,
    )


def _header(figure: Any, profile: Profile, texts: ChartTexts) -> None:
    axes = figure.add_axes((0.04, 0.875, 0.93, 0.105))
    axes.axis("off")
    x = 0.0
    if profile.picture:
        picture = _picture(profile.picture)
        if picture is not None:
            inset = axes.inset_axes((0.0, 0.0, 0.14, 1.0))
            inset.imshow(picture)
            inset.axis("off")
            x = 0.15
    title, line = title_and_line(profile, texts)
    axes.text(
        x,
        0.72,
        title,
        fontsize=17,
        fontweight="bold",
        color=_INK,
        va="center",
        transform=axes.transAxes,
    )
    axes.text(x, 0.25, line, fontsize=11, color=_MUTED, va="center", transform=axes.transAxes)


def _picture(encoded: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(base64.b64decode(encoded)))
        return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _wrap(text: str, width: int) -> str:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        lines.append(current)
    return "\n".join(lines)
