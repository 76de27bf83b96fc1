"""The Graph stand-in's Instagram reads: the profile, account insights with today's metric names,
follower demographics, media and media insights, with Graph's wire format and errors, observed
over real HTTP with the tokens a connection keeps (the Page token and the user token)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from sandbox.facebook import Consent, Demographics, FbPage, FbUser, GraphStandin, IgAccount, Post
from sandbox.facebook.instagram import accounts_once
from tests.graph_client import Kept, get, log_in

USER = "30001"
PAGE = "p-1"
IG = IgAccount(
    id="17841400000000100",
    username="anna.bakes",
    followers_count=12_400,
    name="Anna Bakes",
    biography="Bread, cakes, Sunday mornings.",
    follows_count=310,
    media_count=86,
    website="https://anna.example",
)
DAY = 86400
PROFILE = "username,name,biography,followers_count,follows_count,media_count,website"


def anna(instagram: IgAccount = IG) -> FbUser:
    return FbUser(id=USER, name="Anna B", pages=[FbPage(PAGE, "Anna Bakes", instagram=instagram)])


async def connect(
    fb: GraphStandin,
    http: httpx.AsyncClient,
    *,
    person: FbUser | None = None,
    consent: Consent | None = None,
) -> Kept:
    person = person or anna()
    user_token = (await log_in(fb, http, person, consent)).json()["access_token"]
    page = await get(fb, http, person.pages[0].id, user_token, fields="access_token")
    return Kept(user_token, page.json()["access_token"])


def error_of(answer: httpx.Response) -> tuple[int, int, int | None]:
    error = answer.json()["error"]
    return answer.status_code, error["code"], error.get("error_subcode")


def message_of(answer: httpx.Response) -> str:
    message: str = answer.json()["error"]["message"]
    return message


def window(fb: GraphStandin, days: int = 30) -> dict[str, str]:
    until = int(fb.now())
    return {"since": str(until - days * DAY), "until": str(until)}


# -- the profile --------------------------------------------------------------------------------


async def test_profile_fields_as_requested_through_either_token(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    for token in (kept.page_token, kept.user_token):
        answer = await get(fb, http, IG.id, token, fields=PROFILE)
        assert answer.status_code == 200
        assert answer.json() == {
            "username": "anna.bakes",
            "name": "Anna Bakes",
            "biography": "Bread, cakes, Sunday mornings.",
            "followers_count": 12_400,
            "follows_count": 310,
            "media_count": 86,
            "website": "https://anna.example",
            "id": IG.id,
        }
    only = await get(fb, http, IG.id, kept.page_token, fields="followers_count")
    assert only.json() == {"followers_count": 12_400, "id": IG.id}

    fb.set_instagram_profile(IG.id, followers=13_000, website="https://anna.example/shop")
    changed = await get(fb, http, IG.id, kept.page_token, fields="followers_count,website")
    assert changed.json() == {
        "followers_count": 13_000,
        "website": "https://anna.example/shop",
        "id": IG.id,
    }


async def test_profile_picture_is_a_png_on_the_standin_until_its_url_expires(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    answer = await get(fb, http, IG.id, kept.page_token, fields="profile_picture_url")
    url = answer.json()["profile_picture_url"]
    assert url.startswith(f"{fb.base_url}/cdn/") and "oe=" in url
    picture = await http.get(url)
    assert picture.status_code == 200
    assert picture.headers["content-type"] == "image/png"
    assert picture.content.startswith(b"\x89PNG\r\n\x1a\n")

    fb.fast_forward(days=4)  # the signed CDN URL has run out; a fresh read gives a new one
    assert (await http.get(url)).status_code == 403


async def test_profile_errors_unknown_field_missing_permission_and_foreign_token(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    unknown = await get(fb, http, IG.id, kept.page_token, fields="username,gender")
    assert error_of(unknown) == (400, 100, None)
    assert message_of(unknown) == (
        "(#100) Tried accessing nonexisting field (gender) on node type (IGUser)"
    )

    # Another person's tokens cannot see the account at all.
    stranger = FbUser(id="30002", name="Ben K", pages=[FbPage("p-9", "Ben Kocht")])
    other = await connect(fb, http, person=stranger)
    foreign = await get(fb, http, IG.id, other.user_token, fields="username")
    assert error_of(foreign) == (400, 100, 33)
    foreign_page = await get(fb, http, f"{IG.id}/insights", other.user_token, metric="reach")
    assert error_of(foreign_page) == (400, 100, 33)

    # Without instagram_basic the account's node answers error 10.
    declined = await connect(fb, http, consent=Consent(declined={"instagram_basic"}))
    refused = await get(fb, http, IG.id, declined.page_token, fields="username")
    assert error_of(refused) == (400, 10, None)
    media = await get(fb, http, f"{IG.id}/media", declined.page_token)
    assert error_of(media) == (400, 10, None)


# -- account insights ---------------------------------------------------------------------------


async def test_reach_day_series_for_thirty_days(fb: GraphStandin, http: httpx.AsyncClient) -> None:
    kept = await connect(fb, http)
    params = {"metric": "reach", "period": "day", **window(fb)}
    answer = await get(fb, http, f"{IG.id}/insights", kept.page_token, **params)
    assert answer.status_code == 200
    (reach,) = answer.json()["data"]
    assert reach["name"] == "reach" and reach["period"] == "day"
    assert reach["id"] == f"{IG.id}/insights/reach/day"
    assert reach["title"] and reach["description"]
    values = reach["values"]
    assert len(values) == 30
    assert all(isinstance(v["value"], int) and v["value"] > 0 for v in values)
    ends = [datetime.strptime(v["end_time"], "%Y-%m-%dT%H:%M:%S%z") for v in values]
    assert all(end.tzinfo is not None and end.utcoffset() == UTC.utcoffset(None) for end in ends)
    assert [b - a for a, b in zip(ends, ends[1:], strict=False)] == [ends[1] - ends[0]] * 29
    assert (ends[1] - ends[0]).total_seconds() == DAY
    assert ends[-1].timestamp() <= fb.now()  # only complete days

    # Deterministic: the same account shows the same figures on every read.
    again = await get(fb, http, f"{IG.id}/insights", kept.user_token, **params)
    assert again.json()["data"][0]["values"] == values


async def test_set_series_and_the_total_value_shape(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    reach = list(range(100, 130))
    fb.set_insights(
        IG.id,
        reach=reach,
        views=[10] * 30,
        accounts_engaged=[2] * 30,
        total_interactions=[5] * 30,
    )
    series = await get(
        fb, http, f"{IG.id}/insights", kept.page_token, metric="reach", period="day", **window(fb)
    )
    assert [v["value"] for v in series.json()["data"][0]["values"]] == reach

    totals = await get(
        fb,
        http,
        f"{IG.id}/insights",
        kept.page_token,
        metric="views,accounts_engaged,total_interactions",
        metric_type="total_value",
        period="day",
        **window(fb),
    )
    assert totals.status_code == 200
    data = totals.json()["data"]
    # Views and interactions add up; accounts are counted once over the window.
    assert [(m["name"], m["period"], m["total_value"]) for m in data] == [
        ("views", "day", {"value": 300}),
        ("accounts_engaged", "day", {"value": accounts_once([2] * 30)}),
        ("total_interactions", "day", {"value": 150}),
    ]
    assert accounts_once([2] * 30) < 60
    assert all("values" not in m and m["id"].endswith(f"/{m['name']}/day") for m in data)

    reach_total = await get(
        fb,
        http,
        f"{IG.id}/insights",
        kept.page_token,
        metric="reach",
        metric_type="total_value",
        period="day",
        **window(fb, 7),
    )
    reached = reach_total.json()["data"][0]["total_value"]["value"]
    assert reached == accounts_once(reach[-7:]) and max(reach[-7:]) < reached < sum(reach[-7:])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"metric": "impressions", "period": "day"},
            "(#100) Starting from version 22 and above, the impressions metric is no longer "
            "supported for the queried user.",
        ),
        (
            {"metric": "reach,profile_views", "period": "day"},
            "(#100) The following metrics (profile_views) should be specified with parameter "
            "metric_type=total_value",
        ),
        (
            {"metric": "views", "period": "day"},
            "(#100) The following metrics (views) should be specified with parameter "
            "metric_type=total_value",
        ),
        (
            {"metric": "reach,audience_city", "period": "day"},
            "(#100) metric[1] must be one of the following values: reach, follower_count,",
        ),
        ({"metric": "reach"}, "(#100) The parameter period is required"),
    ],
)
async def test_insights_errors_for_gone_and_malformed_metrics(
    fb: GraphStandin, http: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    kept = await connect(fb, http)
    answer = await get(fb, http, f"{IG.id}/insights", kept.page_token, **params)
    assert error_of(answer) == (400, 100, None)
    assert message_of(answer).startswith(message)
    assert answer.json()["error"]["type"] == "OAuthException"


async def test_window_longer_than_thirty_days_is_refused(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    path = f"{IG.id}/insights"
    answer = await get(
        fb, http, path, kept.page_token, metric="reach", period="day", **window(fb, 31)
    )
    assert error_of(answer) == (400, 100, None)
    assert message_of(answer) == (
        "(#100) There cannot be more than 30 days (2592000 s) between since and until"
    )
    dates = {"since": "2026-01-01", "until": "2026-01-31"}  # dates work as well as timestamps
    ok = await get(fb, http, path, kept.page_token, metric="reach", period="day", **dates)
    assert ok.status_code == 200


async def test_insights_need_instagram_manage_insights(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http, consent=Consent(declined={"instagram_manage_insights"}))
    answer = await get(fb, http, f"{IG.id}/insights", kept.page_token, metric="reach", period="day")
    assert error_of(answer) == (400, 10, None)
    assert message_of(answer) == "(#10) Application does not have permission for this action"
    # The profile and the media list only need instagram_basic.
    assert (await get(fb, http, IG.id, kept.page_token, fields="username")).status_code == 200
    assert (await get(fb, http, f"{IG.id}/media", kept.page_token)).status_code == 200
    post = (await get(fb, http, f"{IG.id}/media", kept.page_token)).json()["data"][0]["id"]
    media = await get(fb, http, f"{post}/insights", kept.page_token, metric="reach")
    assert error_of(media) == (400, 10, None)


# -- follower demographics ----------------------------------------------------------------------


def demographics_params(breakdown: str) -> dict[str, str]:
    return {
        "metric": "follower_demographics",
        "period": "lifetime",
        "metric_type": "total_value",
        "breakdown": breakdown,
    }


async def test_follower_demographics_breakdowns(fb: GraphStandin, http: httpx.AsyncClient) -> None:
    kept = await connect(fb, http)
    fb.set_demographics(
        IG.id,
        Demographics(
            age_gender={("25-34", "F"): 5000, ("25-34", "M"): 2000, ("18-24", "F"): 3000},
            country={"DE": 8000, "AT": 1500, "CH": 0},
            city={"Berlin, Berlin": 2500, "Wien, Vienna": 900},
        ),
    )
    path = f"{IG.id}/insights"
    country = await get(fb, http, path, kept.page_token, **demographics_params("country"))
    assert country.status_code == 200
    (metric,) = country.json()["data"]
    assert metric["name"] == "follower_demographics" and metric["period"] == "lifetime"
    assert metric["id"] == f"{IG.id}/insights/follower_demographics/lifetime"
    (breakdown,) = metric["total_value"]["breakdowns"]
    assert breakdown["dimension_keys"] == ["country"]
    assert breakdown["results"] == [
        {"dimension_values": ["DE"], "value": 8000},
        {"dimension_values": ["AT"], "value": 1500},
    ]

    async def results(keys: str) -> list[tuple[list[str], int]]:
        answer = await get(fb, http, path, kept.page_token, **demographics_params(keys))
        found = answer.json()["data"][0]["total_value"]["breakdowns"][0]["results"]
        return [(r["dimension_values"], r["value"]) for r in found]

    assert await results("age") == [(["25-34"], 7000), (["18-24"], 3000)]
    assert await results("gender") == [(["F"], 8000), (["M"], 2000)]
    assert await results("city") == [(["Berlin, Berlin"], 2500), (["Wien, Vienna"], 900)]
    assert await results("age,gender") == [
        (["25-34", "F"], 5000),
        (["18-24", "F"], 3000),
        (["25-34", "M"], 2000),
    ]

    fb.set_demographics(IG.id, None)  # Instagram has none for the account
    empty = await get(fb, http, path, kept.page_token, **demographics_params("age"))
    assert empty.status_code == 200 and empty.json() == {"data": []}


async def test_demographics_by_default_and_refused_under_one_hundred_followers(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    path = f"{IG.id}/insights"
    answer = await get(fb, http, path, kept.page_token, **demographics_params("gender"))
    results = answer.json()["data"][0]["total_value"]["breakdowns"][0]["results"]
    assert abs(sum(r["value"] for r in results) - IG.followers_count) < 10

    fb.set_instagram_profile(IG.id, followers=99)
    refused = await get(fb, http, path, kept.page_token, **demographics_params("age"))
    assert error_of(refused) == (400, 100, None)
    error = refused.json()["error"]
    assert error["error_user_title"] == "Demographic Data Isn't Available"
    assert "more than 100 people in each breakdown" in error["error_user_msg"]

    missing = {**demographics_params("age"), "period": "day"}
    wrong_period = await get(fb, http, path, kept.page_token, **missing)
    assert error_of(wrong_period) == (400, 100, None)
    no_breakdown = {k: v for k, v in demographics_params("age").items() if k != "breakdown"}
    assert error_of(await get(fb, http, path, kept.page_token, **no_breakdown))[1] == 100


# -- media --------------------------------------------------------------------------------------

MEDIA_FIELDS = "id,caption,media_type,timestamp,like_count,comments_count,permalink"


def posts(now: float) -> list[Post]:
    return [
        Post(
            id=f"1790000000000000{i}",
            caption=f"Post {i}",
            timestamp=now - (i + 1) * DAY,
            like_count=100 + i,
            comments_count=10 + i,
            reach=1000 + i,
            saved=20 + i,
            shares=3,
            before_conversion=i == 4,
        )
        for i in range(5)
    ]


async def test_media_pages_newest_first_with_cursors(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    fb.set_posts(IG.id, list(reversed(posts(fb.now()))))
    first = await get(fb, http, f"{IG.id}/media", kept.page_token, fields=MEDIA_FIELDS, limit=2)
    assert first.status_code == 200
    body = first.json()
    assert [m["id"] for m in body["data"]] == ["17900000000000000", "17900000000000001"]
    item = body["data"][0]
    assert set(item) == set(MEDIA_FIELDS.split(","))
    assert item["caption"] == "Post 0" and item["media_type"] == "IMAGE"
    assert (item["like_count"], item["comments_count"]) == (100, 10)
    assert item["permalink"].startswith("https://www.instagram.com/p/")
    posted = datetime.strptime(item["timestamp"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    assert abs(posted - (fb.now() - DAY)) < 5
    assert set(body["paging"]["cursors"]) == {"before", "after"}
    assert "previous" not in body["paging"]

    seen = [m["id"] for m in body["data"]]
    url = body["paging"].get("next")
    while url:
        page = (await http.get(url)).json()
        seen += [m["id"] for m in page["data"]]
        assert "previous" in page["paging"]
        url = page["paging"].get("next")
    assert seen == [f"1790000000000000{i}" for i in range(5)]

    unknown = await get(fb, http, f"{IG.id}/media", kept.page_token, fields="id,plays")
    assert error_of(unknown) == (400, 100, None)
    assert message_of(unknown).endswith("nonexisting field (plays) on node type (IGMedia)")
    node = await get(fb, http, "17900000000000003", kept.user_token, fields="caption,like_count")
    assert node.json() == {"caption": "Post 3", "like_count": 103, "id": "17900000000000003"}


async def test_media_insights_and_the_before_conversion_error(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    fb.set_posts(IG.id, posts(fb.now()))
    metrics = "reach,saved,likes,comments,total_interactions"
    answer = await get(fb, http, "17900000000000002/insights", kept.page_token, metric=metrics)
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert [(m["name"], m["period"], m["values"]) for m in data] == [
        ("reach", "lifetime", [{"value": 1002}]),
        ("saved", "lifetime", [{"value": 22}]),
        ("likes", "lifetime", [{"value": 102}]),
        ("comments", "lifetime", [{"value": 12}]),
        ("total_interactions", "lifetime", [{"value": 102 + 12 + 22 + 3}]),
    ]
    assert data[0]["id"] == "17900000000000002/insights/reach/lifetime"

    old = await get(fb, http, "17900000000000004/insights", kept.page_token, metric=metrics)
    assert error_of(old) == (400, 100, 2108006)
    error = old.json()["error"]
    assert error["error_user_title"] == "Media Posted Before Business Account Conversion"
    assert error["error_data"] == {"blame_field_specs": [[""]]}
    assert error.get("is_transient") is None

    gone = await get(
        fb, http, "17900000000000002/insights", kept.page_token, metric="impressions,reach"
    )
    assert error_of(gone) == (400, 100, None)
    assert "impressions metric is no longer supported" in message_of(gone)


# -- defaults, new accounts, limits -------------------------------------------------------------


async def test_a_connected_account_has_believable_figures_out_of_the_box(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    media = await get(fb, http, f"{IG.id}/media", kept.page_token, fields=MEDIA_FIELDS)
    items = media.json()["data"]
    assert len(items) == 6 and "next" not in media.json()["paging"]
    stamps = [item["timestamp"] for item in items]
    assert stamps == sorted(stamps, reverse=True)
    first = await get(
        fb, http, f"{items[0]['id']}/insights", kept.page_token, metric="reach,likes,saved"
    )
    assert all(m["values"][0]["value"] > 0 for m in first.json()["data"][:2])

    reach = await get(
        fb, http, f"{IG.id}/insights", kept.page_token, metric="reach", period="day", **window(fb)
    )
    values = [v["value"] for v in reach.json()["data"][0]["values"]]
    assert len(values) == 30 and len(set(values)) > 1
    assert 0.05 * IG.followers_count < sum(values) / 30 < IG.followers_count

    # The same seed gives the same figures in a second stand-in.
    other = GraphStandin()
    await other.start()
    try:
        again = await connect(other, http)
        media_again = await get(other, http, f"{IG.id}/media", again.page_token)
        assert [m["id"] for m in media_again.json()["data"]] == [m["id"] for m in items]
    finally:
        await other.stop()


async def test_a_new_account_answers_empty_data(fb: GraphStandin, http: httpx.AsyncClient) -> None:
    kept = await connect(fb, http)
    fb.set_new_account(IG.id)
    path = f"{IG.id}/insights"
    series = await get(fb, http, path, kept.page_token, metric="reach", period="day", **window(fb))
    assert series.status_code == 200 and series.json() == {"data": []}
    totals = await get(
        fb,
        http,
        path,
        kept.page_token,
        metric="views,accounts_engaged",
        metric_type="total_value",
        period="day",
    )
    assert totals.json() == {"data": []}
    demographics = await get(fb, http, path, kept.page_token, **demographics_params("age"))
    assert demographics.json() == {"data": []}
    assert (await get(fb, http, f"{IG.id}/media", kept.page_token)).json() == {"data": []}


async def test_rate_limits_outages_and_broken_tokens_apply(
    fb: GraphStandin, http: httpx.AsyncClient
) -> None:
    kept = await connect(fb, http)
    path = f"{IG.id}/insights"
    fb.set_outage()
    down = await get(fb, http, path, kept.page_token, metric="reach", period="day")
    assert error_of(down) == (500, 2, None)
    fb.set_outage(False)

    fb.set_rate_limits(instagram_per_hour=2)
    assert (await get(fb, http, path, kept.page_token, metric="reach", period="day")).is_success
    media = await get(fb, http, f"{IG.id}/media", kept.page_token)
    assert media.is_success
    assert "X-Business-Use-Case-Usage" in media.headers
    limited = await get(fb, http, path, kept.page_token, metric="reach", period="day")
    assert error_of(limited) == (400, 80002, None)
    assert limited.json()["error"]["is_transient"] is True
    post = media.json()["data"][0]["id"]
    post_limited = await get(fb, http, f"{post}/insights", kept.page_token, metric="reach")
    assert error_of(post_limited) == (400, 80002, None)  # a post counts against its account
    fb.set_rate_limits()

    fb.remove_page_role(USER, PAGE)
    gone = await get(fb, http, path, kept.page_token, metric="reach", period="day")
    assert error_of(gone)[:2] == (400, 190)
