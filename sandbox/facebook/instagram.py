"""What the stand-in knows about an Instagram professional account beyond its profile: the daily
insight series, follower demographics and posts with their figures, and how Graph answers for
them (``/{ig-user-id}/insights``, ``/{ig-user-id}/media``, ``/{ig-media-id}``,
``/{ig-media-id}/insights``).

Behaviours mirrored, and where they come from:

- Account insights with today's metric names (``reach``, ``views``, ``accounts_engaged``,
  ``total_interactions``, ``likes``, ``comments``, ``shares``, ``saves``, ``replies``,
  ``profile_views``, ``profile_links_taps``, ``follower_demographics``); ``reach`` as a day series
  (``values[*].value/end_time``) or, with ``metric_type=total_value``, a ``total_value``; the
  others only with ``metric_type=total_value``; ``impressions`` gone since v22; a missing value
  is an empty ``data`` set, never 0:
  https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights
  and https://developers.facebook.com/docs/instagram-platform/insights (timestamps ISO-8601 UTC,
  ``+0000``).
- The ``impressions`` error wording (code 100): as Graph sends it, quoted in
  https://github.com/gitroomhq/postiz-app/issues/622. ``metric[i] must be one of the following
  values`` for names Graph does not know: https://github.com/janu-software/facebook-php-sdk/issues/17.
  ``should be specified with parameter metric_type=total_value``:
  https://github.com/brightbeanxyz/brightbean-studio/pull/88 (profile_views without it).
- The 30-day window between ``since`` and ``until``: the reference's ``since``/``until`` rule;
  the wording follows the one Graph uses for Page insights ("There cannot be more than 93 days
  (8035200 s) between since and until"), with 30 days.
- Day values end at midnight Pacific time (``end_time`` ``...T07:00:00+0000`` in summer, as in
  Meta's examples); the stand-in keeps 07:00 UTC all year.
- ``follower_demographics``: ``period=lifetime``, ``metric_type=total_value``, ``breakdown``
  (age, gender, country, city), answered as ``total_value.breakdowns[0].results[*]
  .dimension_values/value``; ``timeframe`` is accepted and ignored (it selects the window of
  the engaged/reached audience metrics, not of followers). Under 100 followers Graph refuses
  with "Demographic Data Isn't Available ... more than 100 people in each breakdown" as
  ``error_user_title``/``error_user_msg`` (relayed by apps passing Graph's error through,
  e.g. https://www.ayrshare.com/docs/help-center/technical-support/instagram_analytics_demographics_warning.md);
  the code is not documented: the stand-in answers code 100 "Invalid parameter" like the
  neighbouring Instagram insight errors.
- Media insights (``reach``, ``saved``, ``likes``, ``comments``, ``shares``,
  ``total_interactions``, ``views``) as ``period: lifetime`` values:
  https://developers.facebook.com/docs/instagram-platform/reference/instagram-media/insights;
  media posted before the account became professional: code 100, subcode 2108006, "Invalid
  parameter" with ``error_user_title`` "Media Posted Before Business Account Conversion"
  (https://github.com/keboola/ex-facebook-graph-api/issues/35).
- ``/{ig-user-id}/media``: newest first, 25 per page by default, ``paging.cursors`` and an
  absolute ``next``/``previous`` URL, like the other edges.
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import GraphError, nonexisting_field

JsonDict = dict[str, Any]

DAY = 86400
# Instagram's days end at midnight Pacific time: 07:00 UTC (the stand-in ignores winter time).
DAY_END_OFFSET = 7 * 3600
MAX_WINDOW_SECONDS = 30 * DAY
DEMOGRAPHICS_MIN_FOLLOWERS = 100
MEDIA_PAGE_SIZE = 25
MEDIA_PAGE_MAX = 100

# Metrics the stand-in serves as a day series (reach) or a total over the window.
SERIES_METRICS = ("reach", "views", "accounts_engaged", "total_interactions")
TOTAL_ONLY_METRICS = frozenset(
    {
        "views",
        "accounts_engaged",
        "total_interactions",
        "likes",
        "comments",
        "shares",
        "saves",
        "replies",
        "profile_views",
        "profile_links_taps",
        "follows_and_unfollows",
        "website_clicks",
    }
)
# Valid names Graph lists in its "must be one of" error (v22+), whether the stand-in fills
# them or answers them empty.
USER_METRICS = (
    "reach",
    "follower_count",
    "website_clicks",
    "profile_views",
    "online_followers",
    "accounts_engaged",
    "total_interactions",
    "likes",
    "comments",
    "shares",
    "saves",
    "replies",
    "engaged_audience_demographics",
    "reached_audience_demographics",
    "follower_demographics",
    "follows_and_unfollows",
    "profile_links_taps",
    "views",
)
DEMOGRAPHIC_BREAKDOWNS = ("age", "gender", "country", "city")
MEDIA_METRICS = (
    "reach",
    "saved",
    "likes",
    "comments",
    "shares",
    "total_interactions",
    "views",
    "follows",
    "profile_visits",
    "profile_activity",
)
MEDIA_FIELDS = frozenset(
    {
        "id",
        "caption",
        "media_type",
        "media_product_type",
        "timestamp",
        "like_count",
        "comments_count",
        "permalink",
        "media_url",
        "username",
    }
)

_TITLES = {
    "reach": ("Accounts reached", "The number of unique accounts that have seen your content."),
    "views": ("Views", "The number of times your content was played or displayed."),
    "accounts_engaged": (
        "Accounts engaged",
        "The number of accounts that have interacted with your content.",
    ),
    "total_interactions": (
        "Content interactions",
        "The total number of post interactions, story interactions, reels interactions, video "
        "interactions and live video interactions.",
    ),
    "follower_demographics": (
        "Follower demographics",
        "The demographic characteristics of followers, including countries, cities and gender "
        "distribution.",
    ),
    "saved": ("Saved", "The number of saves of your post."),
}
# Shares of total_interactions the stand-in gives to the metrics it derives from it.
_INTERACTION_SHARES = {
    "likes": 0.78,
    "comments": 0.06,
    "shares": 0.05,
    "saves": 0.09,
    "replies": 0.02,
    "profile_views": 0.4,
    "profile_links_taps": 0.03,
    "follows_and_unfollows": 0.02,
    "website_clicks": 0.02,
}


@dataclass
class Post:
    """A post on the account with its lifetime figures."""

    id: str
    caption: str
    timestamp: float  # unix seconds
    like_count: int
    comments_count: int
    reach: int
    saved: int
    shares: int = 0
    views: int = 0
    media_type: str = "IMAGE"  # IMAGE | VIDEO | CAROUSEL_ALBUM
    # Posted while the account was still a personal one: Graph has no insights for it.
    before_conversion: bool = False


@dataclass
class Demographics:
    """Followers by age and gender (jointly), by country (ISO code) and by city."""

    age_gender: dict[tuple[str, str], int]
    country: dict[str, int]
    city: dict[str, int]


@dataclass
class InstagramData:
    """The stand-in's figures for one account. Anything not set explicitly is derived from the
    account id (the seed) and its follower count, so the same account always shows the same
    figures."""

    seed: str
    # Explicit day values per metric: day number (see `day_number`) -> value.
    series: dict[str, dict[int, int]] = field(default_factory=dict)
    demographics: Demographics | None = None
    demographics_set: bool = False  # demographics were set (None then means: none at all)
    posts: list[Post] | None = None  # None: six default posts on first use
    no_data: bool = False  # a new account: every insight answer is an empty data set


def day_number(end_time: float) -> int:
    """The number of the Instagram day that ends at `end_time` (or the last one ended by then)."""
    return int((end_time - DAY_END_OFFSET) // DAY)


def day_end(number: int) -> float:
    return number * DAY + DAY_END_OFFSET


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _rng(*parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in parts))


# -- defaults -----------------------------------------------------------------------------------


def default_value(seed: str, metric: str, number: int, followers: int) -> int:
    """A believable, stable value of `metric` on day `number` for an account this size."""
    reach = max(1.0, followers * 0.22) * (0.6 + 0.8 * _rng(seed, "reach", number).random())
    if metric == "reach":
        return int(reach)
    factor = {"views": 2.4, "accounts_engaged": 0.05, "total_interactions": 0.08}[metric]
    return int(reach * factor * (0.8 + 0.4 * _rng(seed, metric, number).random()))


def default_posts(seed: str, followers: int, count: int, now: float) -> list[Post]:
    captions = [
        "Sunday bake: cinnamon rolls",
        "Behind the scenes",
        "New recipe on the blog",
        "Morning light",
        "Q&A: your questions",
        "Three ingredients, ten minutes",
    ]
    posts = []
    for index in range(count):
        rng = _rng(seed, "post", index)
        reach = int(max(1, followers * 0.3) * (0.5 + rng.random()))
        likes = int(reach * (0.05 + 0.05 * rng.random()))
        posts.append(
            Post(
                id=media_id(seed, index),
                caption=captions[index % len(captions)],
                timestamp=float(int(now - (index * 4 + 1) * DAY - rng.randrange(3600 * 12))),
                like_count=likes,
                comments_count=int(likes * 0.08),
                reach=reach,
                saved=int(likes * 0.12),
                shares=int(likes * 0.05),
                views=int(reach * 1.8),
                media_type=("IMAGE", "CAROUSEL_ALBUM", "VIDEO")[index % 3],
            )
        )
    return posts


def media_id(seed: str, index: int) -> str:
    """A numeric media id like Instagram's (17-18 digits), stable per account and position."""
    digest = int(hashlib.sha256(f"{seed}:media:{index}".encode()).hexdigest()[:12], 16)
    return str(17_900_000_000_000_000 + digest % 10**15)


def default_demographics(seed: str, followers: int) -> Demographics:
    rng = _rng(seed, "demographics")
    ages = {"13-17": 2, "18-24": 22, "25-34": 38, "35-44": 21, "45-54": 10, "55-64": 5, "65+": 2}
    female = 0.55 + 0.3 * rng.random()
    genders = {"F": female, "M": (1 - female) * 0.95, "U": (1 - female) * 0.05}
    age_gender = {
        (age, gender): round(followers * share / 100 * gender_share)
        for age, share in ages.items()
        for gender, gender_share in genders.items()
    }
    countries = {"DE": 0.46, "AT": 0.12, "CH": 0.09, "US": 0.08, "GB": 0.05, "NL": 0.04}
    cities = {
        "Berlin, Berlin": 0.14,
        "Hamburg, Hamburg": 0.07,
        "München, Bavaria": 0.07,
        "Wien, Vienna": 0.06,
        "Zürich, Zurich": 0.04,
        "Köln, North Rhine-Westphalia": 0.04,
    }
    return Demographics(
        age_gender=age_gender,
        country={code: round(followers * share) for code, share in countries.items()},
        city={city: round(followers * share) for city, share in cities.items()},
    )


def png(seed: str) -> bytes:
    """A small solid-colour PNG (16x16) in a colour of the account's own: its profile picture."""
    red, green, blue = hashlib.sha256(seed.encode()).digest()[:3]
    row = b"\x00" + bytes([red, green, blue]) * 16
    raw = row * 16

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# -- answers ------------------------------------------------------------------------------------


def _invalid(message: str) -> GraphError:
    return GraphError(100, message)


def parse_time(value: str, name: str) -> float:
    """``since``/``until``: unix seconds, or a date Graph parses (``YYYY-MM-DD``, UTC)."""
    if value.isdigit():
        return float(value)
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise _invalid(f"(#100) The parameter {name} must be a valid timestamp or date") from None


def _metric_list(params: JsonDict) -> list[str]:
    metric = str(params.get("metric", "")).strip()
    if not metric:
        raise _invalid("(#100) The parameter metric is required")
    return [m for m in (part.strip() for part in metric.split(",")) if m]


def _check_user_metrics(metrics: list[str]) -> None:
    for index, metric in enumerate(metrics):
        if metric == "impressions":
            raise _invalid(
                "(#100) Starting from version 22 and above, the impressions metric is no longer "
                "supported for the queried user. Please refer to the documentation at "
                "https://developers.facebook.com/docs/instagram-api/reference/ig-user/insights "
                "for a list of supported metrics."
            )
        if metric not in USER_METRICS:
            raise _invalid(
                f"(#100) metric[{index}] must be one of the following values: "
                + ", ".join(USER_METRICS)
            )


# Metrics that count accounts, not events: over several days Instagram counts each account once,
# so a window's total_value is below the sum of its days (one day's is that day's value).
ACCOUNT_METRICS = frozenset({"reach", "accounts_engaged"})


def accounts_once(days: list[int]) -> int:
    """The stand-in's total of accounts over `days` daily counts: the same people come back on
    several days (about a third of 30 days' sum are different accounts)."""
    if len(days) <= 1:
        return sum(days)
    return round(sum(days) * (0.35 + 0.65 / len(days)))


def user_insights(
    ig_id: str, data: InstagramData, followers: int, params: JsonDict, now: float
) -> JsonDict:
    """``GET /{ig-user-id}/insights``."""
    metrics = _metric_list(params)
    _check_user_metrics(metrics)
    metric_type = params.get("metric_type")
    period = str(params.get("period", ""))
    if not period:
        raise _invalid("(#100) The parameter period is required")
    if "follower_demographics" in metrics:
        return _demographics(ig_id, data, followers, metrics, params, period, metric_type)
    if metric_type not in (None, "total_value", "time_series"):
        raise _invalid(
            "(#100) metric_type must be one of the following values: time_series, total_value"
        )
    total = metric_type == "total_value"
    if not total:
        needing = [m for m in metrics if m in TOTAL_ONLY_METRICS]
        if needing:
            raise _invalid(
                f"(#100) The following metrics ({', '.join(needing)}) should be specified with "
                "parameter metric_type=total_value"
            )
    if period != "day":
        raise _invalid(
            f"(#100) The period {period} is not supported for the metrics "
            f"({', '.join(metrics)}); use period=day"
        )
    until = parse_time(str(params["until"]), "until") if params.get("until") else now
    since = parse_time(str(params["since"]), "since") if params.get("since") else until - 2 * DAY
    if until - since > MAX_WINDOW_SECONDS:
        raise _invalid(
            f"(#100) There cannot be more than 30 days ({MAX_WINDOW_SECONDS} s) between since "
            "and until"
        )
    if data.no_data:
        return {"data": []}
    last_complete = day_number(min(until, now))
    numbers = [n for n in range(day_number(since) + 1, last_complete + 1) if day_end(n) > since]
    answer = []
    for metric in metrics:
        if metric not in SERIES_METRICS and metric not in _INTERACTION_SHARES:
            continue  # valid, but nothing to report (e.g. online_followers): left out
        values = [_day_value(data, metric, n, followers) for n in numbers]
        entry: JsonDict = {"name": metric, "period": "day"}
        if total:
            entry["title"], entry["description"] = _title(metric)
            entry["total_value"] = {
                "value": accounts_once(values) if metric in ACCOUNT_METRICS else sum(values)
            }
        else:
            entry["values"] = [
                {"value": value, "end_time": iso(day_end(n))}
                for value, n in zip(values, numbers, strict=True)
            ]
            entry["title"], entry["description"] = _title(metric)
        entry["id"] = f"{ig_id}/insights/{metric}/day"
        answer.append(entry)
    return {"data": answer}


def _title(metric: str) -> tuple[str, str]:
    return _TITLES.get(metric, (metric.replace("_", " ").capitalize(), ""))


def _day_value(data: InstagramData, metric: str, number: int, followers: int) -> int:
    if metric in _INTERACTION_SHARES:
        base = _day_value(data, "total_interactions", number, followers)
        return int(base * _INTERACTION_SHARES[metric])
    explicit = data.series.get(metric)
    if explicit is not None:
        return explicit.get(number, 0)
    return default_value(data.seed, metric, number, followers)


def _demographics(
    ig_id: str,
    data: InstagramData,
    followers: int,
    metrics: list[str],
    params: JsonDict,
    period: str,
    metric_type: Any,
) -> JsonDict:
    if metrics != ["follower_demographics"]:
        raise _invalid(
            "(#100) follower_demographics must be requested on its own, with period=lifetime"
        )
    if period != "lifetime":
        raise _invalid(
            f"(#100) The period {period} is not supported for the metrics "
            "(follower_demographics); use period=lifetime"
        )
    if metric_type != "total_value":
        raise _invalid(
            "(#100) The following metrics (follower_demographics) should be specified with "
            "parameter metric_type=total_value"
        )
    keys = [k.strip() for k in str(params.get("breakdown", "")).split(",") if k.strip()]
    if not keys:
        raise _invalid(
            "(#100) The following metrics (follower_demographics) should be specified with "
            "parameter breakdown"
        )
    for key in keys:
        if key not in DEMOGRAPHIC_BREAKDOWNS:
            raise _invalid(
                "(#100) breakdown must be one of the following values: "
                + ", ".join(DEMOGRAPHIC_BREAKDOWNS)
            )
    if len(keys) > 1 and not set(keys) <= {"age", "gender"}:
        raise _invalid("(#100) Only age and gender can be combined in one breakdown")
    if followers < DEMOGRAPHICS_MIN_FOLLOWERS:
        raise GraphError(
            100,
            "Invalid parameter",
            user_title="Demographic Data Isn't Available",
            user_msg="You can learn about your audience once this metric has more than 100 "
            "people in each breakdown.",
        )
    demographics = (
        data.demographics if data.demographics_set else default_demographics(data.seed, followers)
    )
    if data.no_data or demographics is None:
        return {"data": []}
    counts = sorted(_breakdown(demographics, keys).items(), key=lambda item: -item[1])
    results = [
        {"dimension_values": list(values), "value": value} for values, value in counts if value > 0
    ]
    title, description = _title("follower_demographics")
    return {
        "data": [
            {
                "name": "follower_demographics",
                "period": "lifetime",
                "title": title,
                "description": description,
                "total_value": {"breakdowns": [{"dimension_keys": keys, "results": results}]},
                "id": f"{ig_id}/insights/follower_demographics/lifetime",
            }
        ]
    }


def _breakdown(demographics: Demographics, keys: list[str]) -> dict[tuple[str, ...], int]:
    if keys == ["country"]:
        return {(code,): n for code, n in demographics.country.items()}
    if keys == ["city"]:
        return {(city,): n for city, n in demographics.city.items()}
    counts: dict[tuple[str, ...], int] = {}
    for (age, gender), value in demographics.age_gender.items():
        parts = {"age": age, "gender": gender}
        key = tuple(parts[k] for k in keys)
        counts[key] = counts.get(key, 0) + value
    return counts


def render_media(post: Post, username: str, fields: list[str], base_url: str) -> JsonDict:
    values: JsonDict = {
        "id": post.id,
        "caption": post.caption,
        "media_type": post.media_type,
        "media_product_type": "REELS" if post.media_type == "VIDEO" else "FEED",
        "timestamp": iso(post.timestamp),
        "like_count": post.like_count,
        "comments_count": post.comments_count,
        "permalink": f"https://www.instagram.com/p/{_shortcode(post.id)}/",
        "media_url": f"{base_url}/cdn/media/{post.id}.png",
        "username": username,
    }
    result: JsonDict = {}
    for name in fields:
        if name not in MEDIA_FIELDS:
            raise nonexisting_field(name, "IGMedia")
        if values[name] != "":
            result[name] = values[name]
    result.setdefault("id", post.id)
    return result


def _shortcode(identifier: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    if identifier.isdigit():
        number = int(identifier)
    else:
        number = int(hashlib.sha256(identifier.encode()).hexdigest()[:16], 16)
    code = ""
    while number:
        number, rest = divmod(number, 64)
        code = alphabet[rest] + code
    return code[-11:]


def media_insights(post: Post, params: JsonDict) -> JsonDict:
    """``GET /{ig-media-id}/insights``."""
    metrics = _metric_list(params)
    for index, metric in enumerate(metrics):
        if metric == "impressions":
            raise _invalid(
                "(#100) Starting from version 22 and above, the impressions metric is no longer "
                "supported for the queried media. Please refer to the documentation at "
                "https://developers.facebook.com/docs/instagram-api/reference/ig-media/insights "
                "for a list of supported metrics."
            )
        if metric not in MEDIA_METRICS:
            raise _invalid(
                f"(#100) metric[{index}] must be one of the following values: "
                + ", ".join(MEDIA_METRICS)
            )
    if post.before_conversion:
        raise GraphError(
            100,
            "Invalid parameter",
            subcode=2108006,
            user_title="Media Posted Before Business Account Conversion",
            user_msg="The media was posted before the most recent time that the user's account "
            "was converted to a business account from a personal account.",
            error_data={"blame_field_specs": [[""]]},
        )
    figures = {
        "reach": post.reach,
        "saved": post.saved,
        "likes": post.like_count,
        "comments": post.comments_count,
        "shares": post.shares,
        "total_interactions": post.like_count + post.comments_count + post.saved + post.shares,
        "views": post.views,
        "follows": 0,
        "profile_visits": int(post.reach * 0.02),
        "profile_activity": int(post.reach * 0.01),
    }
    answer = []
    for metric in metrics:
        title, description = _title(metric)
        answer.append(
            {
                "name": metric,
                "period": "lifetime",
                "values": [{"value": figures[metric]}],
                "title": title,
                "description": description,
                "id": f"{post.id}/insights/{metric}/lifetime",
            }
        )
    return {"data": answer}
