"""What the brand sees of a connected Instagram account (issue 12): the profile, 30 days of
insights, follower demographics and the last posts, parsed from Graph's answers into plain
values, kept as JSON in the database (`ProfileSnapshot.data`), and nothing else.

Pure: no I/O. `bot.profiles` does the reads; `bot.profile_screens` and `bot.chart` show them.

Missing data is never a zero. Each part says why it is missing (`Gap`): Instagram has nothing
yet, the account has fewer than 100 followers (demographics), a post is from before the
account became professional, a permission is missing, or Graph did not answer that part.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

# What is read (meta-platform.md §5): today's metric names only (`impressions` is gone).
PROFILE_FIELDS = (
    "username,name,biography,followers_count,follows_count,media_count,website,profile_picture_url"
)
TOTAL_METRICS = ("reach", "views", "accounts_engaged", "total_interactions")
MEDIA_FIELDS = "id,caption,media_type,timestamp,permalink,like_count,comments_count"
MEDIA_METRICS = "reach,likes,comments,saved,shares"
POSTS_SHOWN = 6
DAYS = 30
TOP_PLACES = 5
# The age buckets Instagram reports, in order.
AGE_BUCKETS = ("13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
SCHEMA = 1  # of the JSON kept; a snapshot of another schema is read again, not parsed


class Gap(StrEnum):
    """Why a part of the profile has no figures."""

    NO_DATA = "no_data"  # Instagram answered with an empty set (new account, nothing yet)
    FEW_FOLLOWERS = "few_followers"  # demographics need 100 followers or more
    BEFORE_PROFESSIONAL = "before_professional"  # a post from before the professional account
    NO_PERMISSION = "no_permission"  # the insights permission is not granted
    UNAVAILABLE = "unavailable"  # Graph did not answer this part (outage, limit)


@dataclass(frozen=True)
class Account:
    username: str
    name: str | None = None
    biography: str | None = None
    followers: int | None = None
    follows: int | None = None
    media_count: int | None = None
    website: str | None = None


@dataclass(frozen=True)
class Day:
    day: str  # ISO date of the Instagram day the value ends
    value: int


@dataclass(frozen=True)
class Activity:
    """The last 30 days."""

    reach: list[Day] = field(default_factory=list)
    # Accounts reached over the whole window, as Instagram counts them (``total_value``): each
    # account once, so less than the days' values added up.
    reached: int | None = None
    views: int | None = None
    accounts_engaged: int | None = None
    total_interactions: int | None = None
    gap: Gap | None = None



@dataclass(frozen=True)
class Share:
    label: str
    value: int


@dataclass(frozen=True)
class Audience:
    """Followers by age and gender, and the top countries and cities."""

    age_gender: list[tuple[str, str, int]] = field(default_factory=list)  # (age, F|M|U, count)
    countries: list[Share] = field(default_factory=list)
    cities: list[Share] = field(default_factory=list)
    gap: Gap | None = None

    def by_age(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for age, gender, value in self.age_gender:
            table.setdefault(age, {}).setdefault(gender, 0)
            table[age][gender] += value
        order = [*AGE_BUCKETS, *sorted(set(table) - set(AGE_BUCKETS))]
        return {age: table[age] for age in order if age in table}

    def by_gender(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for _, gender, value in self.age_gender:
            totals[gender] = totals.get(gender, 0) + value
        return totals


@dataclass(frozen=True)
class Post:
    id: str
    posted_at: str  # ISO time
    media_type: str
    caption: str = ""
    permalink: str | None = None
    likes: int | None = None
    comments: int | None = None
    reach: int | None = None
    saves: int | None = None
    shares: int | None = None
    gap: Gap | None = None  # why reach and saves are missing

    @property
    def interactions(self) -> int | None:
        parts = [self.likes, self.comments, self.saves, self.shares]
        if self.likes is None and self.comments is None:
            return None
        return sum(p or 0 for p in parts)


@dataclass(frozen=True)
class Profile:
    instagram_id: str  # a snapshot of another account than the connection's is not shown
    account: Account
    activity: Activity
    audience: Audience
    posts: list[Post]
    posts_gap: Gap | None = None
    picture: str | None = None  # the profile picture, base64 PNG/JPEG (the URL expires)

    @property
    def engagement_rate(self) -> float | None:
        """Interactions (likes, comments, saves, shares) per post over the last posts, as a
        share of the followers: the figure brands compare influencers by. Only posts with all
        their figures count (one from before the professional account has likes but no saves).
        None without such posts or without followers."""
        counted = [
            p.interactions for p in self.posts if p.gap is None and p.interactions is not None
        ]
        followers = self.account.followers
        if not counted or not followers:
            return None
        return sum(counted) / len(counted) / followers

    @property
    def engagement_per_mille(self) -> int | None:
        rate = self.engagement_rate
        return None if rate is None else round(rate * 1000)

    def to_json(self) -> str:
        return json.dumps({"schema": SCHEMA, **asdict(self)}, separators=(",", ":"))


def from_json(raw: str) -> Profile | None:
    """A kept snapshot, or None when it cannot be read (another schema, damaged)."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            return None
        activity = data["activity"]
        audience = data["audience"]
        return Profile(
            instagram_id=str(data["instagram_id"]),
            account=Account(**data["account"]),
            activity=Activity(
                reach=[Day(**d) for d in activity["reach"]],
                reached=activity.get("reached"),
                views=activity["views"],
                accounts_engaged=activity["accounts_engaged"],
                total_interactions=activity["total_interactions"],
                gap=_gap(activity["gap"]),
            ),
            audience=Audience(
                age_gender=[(a, g, int(v)) for a, g, v in audience["age_gender"]],
                countries=[Share(**s) for s in audience["countries"]],
                cities=[Share(**s) for s in audience["cities"]],
                gap=_gap(audience["gap"]),
            ),
            posts=[Post(**{**p, "gap": _gap(p["gap"])}) for p in data["posts"]],
            posts_gap=_gap(data["posts_gap"]),
            picture=data["picture"],
        )
    except (ValueError, KeyError, TypeError):
        return None


def _gap(value: object) -> Gap | None:
    return Gap(value) if isinstance(value, str) else None


# --- parsing Graph's answers ---------------------------------------------------------------


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_account(body: dict[str, Any]) -> Account:
    return Account(
        username=str(body.get("username") or ""),
        name=_text(body.get("name")),
        biography=_text(body.get("biography")),
        followers=_int(body.get("followers_count")),
        follows=_int(body.get("follows_count")),
        media_count=_int(body.get("media_count")),
        website=_text(body.get("website")),
    )


def _entries(body: dict[str, Any]) -> list[dict[str, Any]]:
    data = body.get("data")
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def instagram_day(end_time: str) -> str:
    """The day a value belongs to: Instagram's days end at midnight Pacific time, so a value
    ending at 07:00 UTC on the 5th is the 4th's."""
    moment = datetime.fromisoformat(end_time.replace("+0000", "+00:00")).astimezone(UTC)
    day = date.fromordinal(moment.toordinal() - (1 if moment.hour < 12 else 0))
    return day.isoformat()


def parse_activity(series: dict[str, Any], totals: dict[str, Any]) -> Activity:
    """`reach` as a day series, and the totals of `TOTAL_METRICS` (``metric_type=total_value``).
    Two empty answers: Instagram has nothing yet."""
    reach: list[Day] = []
    for entry in _entries(series):
        if entry.get("name") != "reach":
            continue
        for point in entry.get("values") or []:
            value = _int(point.get("value")) if isinstance(point, dict) else None
            end = point.get("end_time") if isinstance(point, dict) else None
            if value is not None and isinstance(end, str):
                try:
                    reach.append(Day(instagram_day(end), value))
                except ValueError:
                    continue
    found: dict[str, int] = {}
    for entry in _entries(totals):
        total = entry.get("total_value")
        value = _int(total.get("value")) if isinstance(total, dict) else None
        if isinstance(entry.get("name"), str) and value is not None:
            found[entry["name"]] = value
    if not reach and not found:
        return Activity(gap=Gap.NO_DATA)
    return Activity(
        reach=sorted(reach, key=lambda d: d.day)[-DAYS:],
        reached=found.get("reach"),
        views=found.get("views"),
        accounts_engaged=found.get("accounts_engaged"),
        total_interactions=found.get("total_interactions"),
    )


def parse_breakdown(body: dict[str, Any]) -> list[tuple[tuple[str, ...], int]] | None:
    """``follower_demographics`` results: (dimension values, count), or None for an empty set."""
    for entry in _entries(body):
        total = entry.get("total_value")
        breakdowns = total.get("breakdowns") if isinstance(total, dict) else None
        if not isinstance(breakdowns, list) or not breakdowns:
            continue
        results = breakdowns[0].get("results") if isinstance(breakdowns[0], dict) else None
        rows: list[tuple[tuple[str, ...], int]] = []
        for result in results or []:
            if not isinstance(result, dict):
                continue
            values = result.get("dimension_values")
            value = _int(result.get("value"))
            if isinstance(values, list) and value is not None:
                rows.append((tuple(str(v) for v in values), value))
        return rows or None
    return None


def audience_of(
    age_gender: list[tuple[tuple[str, ...], int]] | None,
    countries: list[tuple[tuple[str, ...], int]] | None,
    cities: list[tuple[tuple[str, ...], int]] | None,
) -> Audience:
    if not age_gender and not countries and not cities:
        return Audience(gap=Gap.NO_DATA)

    def top(rows: list[tuple[tuple[str, ...], int]] | None) -> list[Share]:
        ranked = sorted(((v[0], n) for v, n in rows or [] if v), key=lambda r: (-r[1], r[0]))
        return [Share(label, n) for label, n in ranked[:TOP_PLACES]]

    return Audience(
        age_gender=[(v[0], v[1], n) for v, n in age_gender or [] if len(v) == 2],
        countries=top(countries),
        cities=top(cities),
    )


def parse_posts(body: dict[str, Any]) -> list[Post]:
    posts: list[Post] = []
    for entry in _entries(body)[:POSTS_SHOWN]:
        identifier = _text(entry.get("id"))
        if identifier is None:
            continue
        posts.append(
            Post(
                id=identifier,
                posted_at=str(entry.get("timestamp") or ""),
                media_type=str(entry.get("media_type") or "IMAGE"),
                caption=(_text(entry.get("caption")) or "")[:80],
                permalink=_text(entry.get("permalink")),
                likes=_int(entry.get("like_count")),
                comments=_int(entry.get("comments_count")),
            )
        )
    return posts


def with_insights(post: Post, body: dict[str, Any] | None, gap: Gap | None = None) -> Post:
    """A post with its lifetime figures (``/{media-id}/insights``), or the reason there are none."""
    if body is None:
        return Post(**{**asdict(post), "gap": gap or Gap.UNAVAILABLE})
    found: dict[str, int] = {}
    for entry in _entries(body):
        values = entry.get("values")
        if isinstance(values, list) and values and isinstance(values[0], dict):
            value = _int(values[0].get("value"))
            if value is not None and isinstance(entry.get("name"), str):
                found[entry["name"]] = value
    return Post(
        **{
            **asdict(post),
            "reach": found.get("reach"),
            "saves": found.get("saved"),
            "shares": found.get("shares"),
            "likes": found.get("likes", post.likes),
            "comments": found.get("comments", post.comments),
        }
    )
