"""What a profile looks like in chat (issue 12): the chart's words, the text beside it, and the
answers when there is nothing to show. Pure: texts in, `Screen`s and `ChartTexts` out.

The same screen serves the brand's managers (/profile) and the influencer (/shared: "exactly
what the brand sees"); only the first line and the last differ.
"""

from __future__ import annotations

from datetime import date, datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.buttons import RefreshProfile
from bot.chart import ChartTexts, shown_name
from bot.console_screens import path_name
from bot.i18n import Texts
from bot.insights import Gap, Post, Profile
from bot.models import LoginPath
from bot.screens import Screen, count, long_date
from bot.verdict import normalize_handle

POSTS_LISTED = 6


def number(t: Texts, value: int | None) -> str:
    return "–" if value is None else count(t, value)


def compact(t: Texts, value: int) -> str:
    """A number short enough for a chart's axis: 800, 12.5K, 2.5M, 987M (12,5 Tsd., 2,5 Mio.)."""
    if abs(value) < 1000:
        return str(value)
    units = (("thousand", 1_000), ("million", 1_000_000), ("billion", 1_000_000_000))
    for unit, size in units:
        scaled = value / size
        shown = (f"{scaled:.1f}" if abs(scaled) < 100 else f"{scaled:.0f}").removesuffix(".0")
        if abs(float(shown)) < 1000 or unit == "billion":
            break
    return t.plain(f"profile.chart.{unit}", value=shown.replace(".", t.plain("number.decimal")))


def share(t: Texts, part: int, whole: int) -> str:
    """A percentage as the reader writes it: 12.5 % / 12,5 %."""
    if not whole:
        return "–"
    value = part / whole * 100
    # Two figures are enough to compare: 46 %, 9 %, 2.9 %, 0.4 %.
    text = f"{value:.0f}" if value >= 10 or round(value, 1) == round(value) else f"{value:.1f}"
    return t.plain("profile.percent", value=text.replace(".", t.plain("number.decimal")))


def short_date(t: Texts, day: date) -> str:
    months = t.plain("date.months_short").split(",")
    return t.plain("profile.short_date", day=day.day, month=months[day.month - 1].strip())


def moment(t: Texts, when: datetime) -> str:
    return t.plain("profile.moment", date=long_date(t, when), time=when.strftime("%H:%M"))


def flag(code: str) -> str:
    """A country's flag from its ISO code (Telegram shows it; the code itself stays beside)."""
    if len(code) != 2 or not code.isalpha():
        return ""
    return "".join(chr(0x1F1E6 + ord(c) - ord("A")) for c in code.upper())


def chart_texts(t: Texts, profile: Profile) -> ChartTexts:
    return ChartTexts(
        followers=t.plain("profile.chart.followers", count="{count}"),
        reach_title=t.plain("profile.chart.reach"),
        reach_gap=gap_text(t, profile.activity.gap, profile, plain=True)
        if profile.activity.gap
        else None,
        age_title=t.plain("profile.chart.ages"),
        women=t.plain("profile.chart.women"),
        men=t.plain("profile.chart.men"),
        other=t.plain("profile.chart.other"),
        countries_title=t.plain("profile.chart.countries"),
        audience_gap=gap_text(t, profile.audience.gap, profile, plain=True)
        if profile.audience.gap
        else None,
        short_date=lambda day: short_date(t, day),
        number=lambda value: count(t, value),
        compact=lambda value: compact(t, value),
    )


def gap_text(t: Texts, gap: Gap | None, profile: Profile, *, plain: bool = False) -> str:
    """Why a part has no figures (`plain` for the chart, else Telegram HTML)."""
    say = t.plain if plain else t
    return say(
        f"profile.gap.{(gap or Gap.UNAVAILABLE).value}",
        username=profile.account.username,
        followers=number(t, profile.account.followers),
    )


def caption(t: Texts, profile: Profile) -> str:
    account = profile.account
    return t.plain(
        "profile.caption", username=account.username, followers=number(t, account.followers)
    )


def profile_text(
    t: Texts,
    profile: Profile,
    *,
    fetched_at: datetime,
    head: str,
    foot: str | None = None,
    path: str | None = None,
    page: str | None = None,
    head_names: str | None = None,
) -> str:
    """The figures as text, under `head` (whose profile, for whom), ending with `foot`; `path`,
    the connection's way in (`bot.models.LoginPath` value), is named when given, with `page`,
    the Facebook Page's name, on the Facebook Page way. `head_names`: the handle `head` names
    already (not repeated on the next line when the account has no other name)."""
    account = profile.account
    lines: list[str] = [head, ""]
    name = shown_name(account.name, account.username)
    if name:
        lines.append(t("profile.title", name=name, username=account.username))
    elif normalize_handle(account.username) != normalize_handle(head_names or ""):
        lines.append(t("profile.title_username", username=account.username))
    lines.append(
        t(
            "profile.counts",
            followers=number(t, account.followers),
            follows=number(t, account.follows),
            media=number(t, account.media_count),
        )
    )
    if account.website:
        lines.append(t("profile.website", website=account.website))
    if path:
        lines.append(path_line(t, path, page))
    lines += ["", *activity_lines(t, profile), "", *audience_lines(t, profile), ""]
    lines += post_lines(t, profile)
    lines += ["", t("profile.as_of", when=moment(t, fetched_at))]
    if foot:
        lines += ["", foot]
    return "\n".join(lines)


def path_line(t: Texts, path: str, page: str | None) -> str:
    """The connection's way in: the Facebook Page by its name, or Instagram Login."""
    if path == LoginPath.FACEBOOK and page and page.strip():
        return t("profile.path_page", page=page.strip())
    return t("profile.path", path=path_name(t, path))


def shared_foot(t: Texts, path: str | None) -> str:
    """/shared's closing line: where the influencer can remove the app, by the connection's way
    in (Facebook's settings, or Instagram's for an Instagram Login connection)."""
    return t("shared.foot_instagram" if path == "instagram" else "shared.foot")


def activity_lines(t: Texts, profile: Profile) -> list[str]:
    activity = profile.activity
    lines: list[str] = [t("profile.period")]
    if activity.gap is not None:
        return [*lines, gap_text(t, activity.gap, profile)]
    if activity.reach:
        best = max(activity.reach, key=lambda d: d.value)
        lines.append(
            t(
                "profile.reach",
                value=number(t, activity.reached),
                best_day=short_date(t, date.fromisoformat(best.day)),
                best=number(t, best.value),
            )
        )
    elif activity.reached is not None:
        lines.append(t("profile.reach_only", value=number(t, activity.reached)))
    else:
        lines.append(t("profile.reach_none"))
    for key, value in (
        ("views", activity.views),
        ("engaged", activity.accounts_engaged),
        ("interactions", activity.total_interactions),
    ):
        lines.append(t(f"profile.{key}", value=number(t, value)))
    return lines


def audience_lines(t: Texts, profile: Profile) -> list[str]:
    audience = profile.audience
    lines: list[str] = [t("profile.audience")]
    if audience.gap is not None:
        return [*lines, gap_text(t, audience.gap, profile)]
    genders = audience.by_gender()
    total = sum(genders.values())
    if total:
        lines.append(
            t(
                "profile.gender_other" if genders.get("U") else "profile.gender",
                women=share(t, genders.get("F", 0), total),
                men=share(t, genders.get("M", 0), total),
                other=share(t, genders.get("U", 0), total),
            )
        )
        ages = sorted(
            ((age, sum(g.values())) for age, g in audience.by_age().items()),
            key=lambda item: -item[1],
        )[:3]
        lines.append(
            t(
                "profile.ages",
                ages=", ".join(f"{age.replace('-', '–')} {share(t, n, total)}" for age, n in ages),
            )
        )
    base = total or sum(s.value for s in audience.countries)
    if audience.countries:
        places = ", ".join(
            f"{flag(s.label)} {s.label} {share(t, s.value, base)}".strip()
            for s in audience.countries
        )
        lines.append(t("profile.countries", places=places))
    if audience.cities:
        places = ", ".join(
            f"{s.label.split(',')[0]} {share(t, s.value, base)}" for s in audience.cities
        )
        lines.append(t("profile.cities", places=places))
    return lines


def post_lines(t: Texts, profile: Profile) -> list[str]:
    posts = profile.posts[:POSTS_LISTED]
    if not posts:
        return [t("profile.posts_none"), gap_text(t, profile.posts_gap or Gap.NO_DATA, profile)]
    lines: list[str] = [t("profile.posts", count=len(posts))]
    for post in posts:
        lines.append(post_line(t, post, profile))
    rate = profile.engagement_rate
    counted = sum(1 for p in posts if p.gap is None and p.interactions is not None)
    if rate is not None:
        lines.append(
            t(
                "profile.engagement",
                rate=share(t, round(rate * 100_000), 100_000),
                count=counted,
            )
        )
    else:
        lines.append(
            t(
                "profile.engagement_none"
                if profile.account.followers
                else "profile.engagement_no_followers"
            )
        )
    return lines


def post_line(t: Texts, post: Post, profile: Profile) -> str:
    try:
        day = short_date(t, date.fromisoformat(post.posted_at[:10]))
    except ValueError:
        day = "–"
    kind = (
        t.plain(f"profile.kind.{post.media_type.lower()}")
        if t.has(f"profile.kind.{post.media_type.lower()}")
        else post.media_type.title()
    )
    if post.gap is not None:
        figures = t(
            "profile.post_gap",
            likes=number(t, post.likes),
            comments=number(t, post.comments),
            why=gap_text(t, post.gap, profile),
        )
    else:
        figures = t(
            "profile.post_figures",
            reach=number(t, post.reach),
            likes=number(t, post.likes),
            comments=number(t, post.comments),
            saves=number(t, post.saves),
        )
    if post.permalink:
        return t("profile.post_linked", day=day, kind=kind, link=post.permalink, figures=figures)
    return t("profile.post", day=day, kind=kind, figures=figures)


def refresh_keyboard(
    t: Texts, invitation_id: int, extra: list[InlineKeyboardButton] | None = None
) -> InlineKeyboardMarkup:
    refresh = InlineKeyboardButton(
        t.plain("profile.button_refresh"), callback_data=RefreshProfile(invitation_id).pack()
    )
    return InlineKeyboardMarkup([[refresh], *([extra] if extra else [])])


def problem_line(
    t: Texts,
    problem: str,
    *,
    handle: str,
    fetched_at: datetime | None,
    audience: str,
    path: str = LoginPath.FACEBOOK,
) -> str:
    """Why the newest read failed; with an older snapshot shown, when that one is from.
    `audience`: "profile" (about the influencer, to a manager) or "shared" (to the influencer);
    `path`: the connection's way in (whose refusal it was: Facebook's or Instagram's)."""
    key = _problem_key(t, f"{audience}.problem", problem, path)
    return t(key, handle=handle, when=moment(t, fetched_at) if fetched_at else "")


def nothing_yet(
    t: Texts, problem: str, *, handle: str, audience: str, path: str = LoginPath.FACEBOOK
) -> Screen:
    return Screen(t(_problem_key(t, f"{audience}.nothing", problem, path), handle=handle))


def _problem_key(t: Texts, prefix: str, problem: str, path: str) -> str:
    """An Instagram Login connection's reads go to Instagram, not Facebook: its own words where
    they differ (`…_instagram`)."""
    key = f"{prefix}.{problem}"
    if path == LoginPath.INSTAGRAM and t.has(f"{key}_instagram"):
        return f"{key}_instagram"
    return key
