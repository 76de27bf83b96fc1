"""Health checks batched where the Graph API allows (issue 11): debug_token of many connections
in one call to Graph's batch API (up to 50 requests per POST, each still a call against the rate
limits). The stand-in's batch endpoint, the client's `debug_tokens`, and a health round's calls,
through real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import sqlalchemy as sa

from bot.graph import BATCH_MAX, GraphClient, GraphError
from bot.health import GraphProblem, ProblemKind
from bot.models import Connection
from sandbox.facebook import Consent, FbPage, FbUser, GraphStandin, IgAccount
from sandbox.facebook.state import LONG_LIVED_SECONDS
from tests.test_upkeep import _seed
from tests.world import World, close_world, make_world

APP_TOKEN = "1234567890|test-app-secret"  # the stand-in's defaults


def _person_token(fb: GraphStandin, n: int) -> str:
    """A long-lived user token of a person who granted everything."""
    person = FbUser(
        id=f"fb-{n}",
        name=f"Person {n}",
        pages=[FbPage(id=f"p-{n}", name=f"Page {n}", instagram=IgAccount(f"ig-{n}", f"c{n}"))],
    )
    fb.complete_dialog(
        {
            "client_id": fb.app_id,
            "redirect_uri": "https://bot.test/cb",
            "state": "s",
            "scope": "pages_show_list,instagram_basic",
        },
        person,
        Consent(),
    )
    return fb._issue_token(person.id, LONG_LIVED_SECONDS).value


def _debug_request(token: str) -> dict[str, str]:
    return {"method": "GET", "relative_url": f"debug_token?input_token={token}"}


async def _post_batch(fb: GraphStandin, batch: list[dict[str, str]], **form: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{fb.base_url}/v25.0/",
            data={"batch": json.dumps(batch), "access_token": APP_TOKEN, **form},
        )


def _client(fb: GraphStandin) -> GraphClient:
    return GraphClient(
        base_url=fb.base_url, version="v25.0", app_id=fb.app_id, app_secret=fb.app_secret
    )


# --- the stand-in's batch endpoint ---------------------------------------------------------------


async def test_a_batch_answers_each_request_in_order_in_graphs_shape(fb: GraphStandin) -> None:
    valid = _person_token(fb, 1)
    calls = len(fb.requests)
    response = await _post_batch(
        fb,
        [
            _debug_request(valid),
            _debug_request("EAAnot-a-token"),
            # A request with its own token (a user token without appsecret_proof): refused.
            {"method": "GET", "relative_url": f"me?access_token={valid}"},
        ],
    )
    assert response.status_code == 200
    answers = response.json()
    assert isinstance(answers, list) and len(answers) == 3
    first, second, third = answers
    assert first["code"] == 200 and isinstance(first["body"], str)
    assert any(h["name"] == "X-App-Usage" for h in first["headers"])
    data = json.loads(first["body"])["data"]
    assert data["is_valid"] is True and data["user_id"] == "fb-1"
    assert json.loads(second["body"])["data"]["is_valid"] is False
    assert third["code"] == 400
    assert "appsecret_proof" in json.loads(third["body"])["error"]["message"]
    # One POST; each request in it is a call of its own.
    assert len(fb.batch_requests) == 1
    assert [path for _, path, _ in fb.requests[calls:]] == [
        "/v25.0/debug_token",
        "/v25.0/debug_token",
        "/v25.0/me",
    ]

    quiet = await _post_batch(fb, [_debug_request(valid)], include_headers="false")
    assert "headers" not in quiet.json()[0]


async def test_a_batch_of_more_than_50_is_refused_whole(fb: GraphStandin) -> None:
    valid = _person_token(fb, 1)
    calls = len(fb.requests)
    response = await _post_batch(fb, [_debug_request(valid)] * (BATCH_MAX + 1))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 1 and "Maximum batch size is 50" in error["message"]
    assert len(fb.requests) == calls  # nothing in it was run


async def test_each_request_in_a_batch_counts_against_the_rate_limits(fb: GraphStandin) -> None:
    tokens = [_person_token(fb, n) for n in range(5)]
    fb.set_rate_limits(app_per_hour=3)
    answers = (await _post_batch(fb, [_debug_request(t) for t in tokens])).json()
    assert [a["code"] for a in answers] == [200, 200, 200, 400, 400]
    error = json.loads(answers[3]["body"])["error"]
    assert error["code"] == 4 and error["is_transient"] is True
    assert fb.limits.refused == 2


async def test_an_outage_fails_the_batch_post_itself(fb: GraphStandin) -> None:
    valid = _person_token(fb, 1)
    fb.set_outage(True)
    response = await _post_batch(fb, [_debug_request(valid)])
    assert response.status_code == 500
    assert response.json()["error"]["code"] == 2


# --- the client ----------------------------------------------------------------------------------


async def test_debug_tokens_sends_one_batch_per_50_and_keeps_the_order(fb: GraphStandin) -> None:
    tokens = [_person_token(fb, n) for n in range(120)]
    tokens[7] = "EAAnot-a-token"
    fb.remove_app("fb-99")  # a token Facebook invalidated: debug_token says why
    fb.fail_network("debug_token")  # the request that does not complete comes back as null
    client = _client(fb)
    sizes: list[int] = []

    async def before(count: int) -> None:
        sizes.append(count)

    try:
        results = await client.debug_tokens(tokens, before_batch=before)
    finally:
        await client.aclose()
    assert sizes == [50, 50, 20] and len(fb.batch_requests) == 3
    assert len(results) == 120
    # The app token travels in the form body, never in a URL.
    assert all(params.get("access_token") == APP_TOKEN for params in fb.batch_requests)
    first = results[0]
    assert isinstance(first, GraphProblem) and first.kind is ProblemKind.TRANSIENT
    ok: list[dict[str, Any]] = [r for r in results if isinstance(r, dict)]
    assert len(ok) == 119
    assert [r["user_id"] for r in results[1:5] if isinstance(r, dict)] == [
        "fb-1",
        "fb-2",
        "fb-3",
        "fb-4",
    ]
    invalid = results[7]
    assert isinstance(invalid, dict) and invalid["is_valid"] is False
    removed = results[99]
    assert isinstance(removed, dict) and removed["is_valid"] is False
    assert removed["error"]["subcode"] == 458


async def test_debug_tokens_reports_a_refused_request_and_a_failed_post(fb: GraphStandin) -> None:
    tokens = [_person_token(fb, n) for n in range(4)]
    client = _client(fb)
    try:
        fb.set_rate_limits(app_per_hour=2)
        results = await client.debug_tokens(tokens)
        assert [isinstance(r, dict) for r in results] == [True, True, False, False]
        limited = results[3]
        assert isinstance(limited, GraphProblem) and limited.kind is ProblemKind.RATE_LIMITED
        fb.set_rate_limits()
        fb.set_outage(True)
        try:
            await client.debug_tokens(tokens)
        except GraphError as error:
            assert error.code == 2 and error.http_status == 500
        else:
            raise AssertionError("the failed batch POST must raise")
    finally:
        await client.aclose()


# --- a health round ------------------------------------------------------------------------------


async def _make_due(world: World) -> None:
    async with world.db.transaction() as s:
        await s.exec(sa.update(Connection).values(next_check_at=None))


async def test_a_round_asks_debug_token_in_batches_and_judges_each(database_url: str) -> None:
    count = 120
    world = await make_world(database_url, health_graph_calls_per_second=1000.0)
    try:
        await world.bot.jobs.stop()
        await _seed(world, count)
        world.graph.remove_app("fb-3")
        world.graph.remove_app("fb-77")
        batches, calls = len(world.graph.batch_requests), len(world.graph.requests)

        report = await world.bot.upkeep.run_round()

        assert (report.checked, report.retried) == (count, 0)
        assert len(world.graph.batch_requests) - batches == math.ceil(count / BATCH_MAX)
        debugs = [p for _, p, _ in world.graph.requests[calls:] if p.endswith("/debug_token")]
        assert len(debugs) == count
        rows = await world.rows(
            "SELECT page_id, health, health_reason FROM connection "
            "WHERE health IS NOT NULL AND health != 'healthy' ORDER BY page_id"
        )
        assert rows == [
            ("p-3", "disconnected", "app_removed"),
            ("p-77", "disconnected", "app_removed"),
        ]
        [(healthy,)] = await world.rows("SELECT count(*) FROM connection WHERE health = 'healthy'")
        assert healthy == count - 2
    finally:
        await close_world(world)


async def test_a_rate_limit_inside_a_batch_retries_later(database_url: str) -> None:
    """Graph refuses part of a batch (the app's limit is reached after 30 of its 50 requests):
    the claim waits, nobody's health changes, the rest of the round waits for the next one;
    with the limit lifted the next round checks everyone."""
    world = await make_world(database_url, health_graph_calls_per_second=1000.0)
    try:
        await world.bot.jobs.stop()
        await _seed(world, 60)
        world.graph.set_rate_limits(app_per_hour=30)
        report = await world.bot.upkeep.run_round()
        assert (report.checked, report.changed, report.retried) == (0, 0, 50)
        assert await world.rows("SELECT count(*) FROM connection WHERE health != 'healthy'") == [
            (0,)
        ]
        [(waiting,)] = await world.rows(
            "SELECT count(*) FROM connection WHERE next_check_at IS NOT NULL"
        )
        assert waiting == 50

        world.graph.set_rate_limits()
        await _make_due(world)
        report = await world.bot.upkeep.run_round()
        assert (report.checked, report.retried) == (60, 0)
        assert await world.rows("SELECT DISTINCT health FROM connection") == [("healthy",)]
    finally:
        await close_world(world)
