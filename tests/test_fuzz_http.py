"""Property-based: malformed input thrown at every route of the running callback server (OAuth
callback, Telegram webhook, health check, unknown paths, wrong methods, and whatever else the
router serves) never gets a 5xx, never changes the database, and is never echoed back.

Requests go over a raw socket so that anything can be sent: duplicated and percent-garbage query
parameters, bytes that are not UTF-8, odd methods and headers. Some of it never reaches the app:
aiohttp's HTTP parser answers 400 itself (see `_parser_refusal`). SQLite only, one running bot per
test function; the number of examples tried per route is printed in the terminal summary."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.i18n import Texts
from tests.db_snapshot import Snapshot, snapshot
from tests.world import ANNA, World, anna_on_facebook, close_world, make_world
from web_callback.app import (
    _SECURITY_HEADERS,
    MAX_QUERY_BYTES,
    MAX_UPDATE_BYTES,
    SECRET_HEADER,
    WEBHOOK_PATH,
)
from web_callback.pages import render

TRIED: Counter[str] = Counter()
PARSER_REFUSED: Counter[str] = Counter()
ECHOED_BY_PARSER: Counter[str] = Counter()

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written to .hypothesis/
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class _FuzzSummary:
    @staticmethod
    def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
        if not TRIED:
            return
        terminalreporter.section("malformed HTTP input tried per route")
        for route, count in sorted(TRIED.items()):
            refused = PARSER_REFUSED[route]
            terminalreporter.write_line(
                f"{route:<24} {count:>5} requests, no 5xx, no state change"
                + (f" ({refused} refused by aiohttp's HTTP parser)" if refused else "")
            )


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    manager = request.config.pluginmanager
    if not manager.has_plugin("connect-bot-fuzz-summary"):
        manager.register(_FuzzSummary(), "connect-bot-fuzz-summary")
    yield


@pytest.fixture
async def fuzz_world(tmp_path: Path) -> AsyncIterator[World]:
    """The bot in webhook mode with some real state: an invitation, Anna at the login step with
    a live OAuth state. Nothing the fuzzer sends may touch it."""
    w = await make_world(f"sqlite+aiosqlite:///{tmp_path}/fuzz.sqlite3", webhook=True)
    try:
        token = await w.invite("@anna.bakes")
        await w.through_checks(ANNA, token)
        await w.settle()
        await _outbox_delivered(w)  # the manager's card edits go out paced, after a moment
        yield w
    finally:
        await close_world(w)


async def _outbox_delivered(world: World) -> None:
    async with asyncio.timeout(15):
        while any(r.status == "pending" for r in await world.db.outbox.rows()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)


# --- a raw HTTP/1.1 client --------------------------------------------------------------------


@dataclass
class RawResponse:
    version: bytes
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_request(
    port: int,
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    body: bytes = b"",
) -> RawResponse:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body or method not in (b"GET", b"HEAD"):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
    assert data, "the server closed the connection without an answer"
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    version, status, *_ = status_line.split(b" ", 2)
    parsed: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        parsed[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return RawResponse(version, int(status), parsed, rest)


def _parser_refusal(response: RawResponse) -> bool:
    """aiohttp's HTTP parser refused the request before any route or middleware saw it: it answers
    400 over HTTP/1.0 as text/plain with the parser's message (which quotes the offending line)."""
    return response.status == 400 and response.version == b"HTTP/1.0"


def _check_common(route: str, response: RawResponse, sent: list[bytes]) -> None:
    TRIED[route] += 1
    assert response.status < 500, (response.status, response.body[:300])
    if _parser_refusal(response):
        PARSER_REFUSED[route] += 1
        if any(len(v) >= 8 and v in response.body for v in sent):
            ECHOED_BY_PARSER[route] += 1
        return
    _check_headers(response)
    for value in sent:
        if len(value) >= 8:
            assert value not in response.body, (value, response.body[:300])


def _check_headers(response: RawResponse) -> None:
    for name, value in _SECURITY_HEADERS.items():
        assert response.headers.get(name.lower()) == value, (name, response.status)


async def _unchanged(
    world: World, before: Snapshot, *, ignore: frozenset[str] = frozenset()
) -> None:
    after = await snapshot(world.db, ignore=ignore)
    expected = {k: v for k, v in before.items() if k not in ignore}
    assert after == expected


# --- strategies -----------------------------------------------------------------------------

_REDIRECT_KEYS = st.sampled_from(
    [
        "state", "code", "error", "error_code", "error_reason", "error_description",
        "granted_scopes", "denied_scopes", "#_", "", "STATE", "state[]", "st%61te",
    ]
)  # fmt: skip
_PERCENT_GARBAGE = st.lists(
    st.sampled_from(
        ["%", "%z", "%zz", "%ED%A0%80", "%FF", "%00", "%C0%AF", "%%", "+", "&", "=", ";", "%2",
         "%E2%82", "%0D%0A", "%3Cscript%3E", "..%2F", "%u0041", "a"]
    ),
    max_size=30,
).map("".join)  # fmt: skip


@st.composite
def _query_values(draw: st.DrawFn, raw_bytes: bool) -> tuple[bytes, bytes]:
    """(as sent, the decoded value a careless page could echo). With ``raw_bytes``, also bytes
    put unencoded into the request line, which aiohttp's parser mostly refuses itself."""
    kinds = ["text", "bytes", "state-shaped", "garbage", "huge"] + (["raw"] if raw_bytes else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "text":
        text = draw(st.text(max_size=120))
        return quote(text, safe="").encode(), text.encode("utf-8", "surrogatepass")
    if kind == "bytes":
        data = draw(st.binary(max_size=60))
        return quote(data, safe="").encode(), data
    if kind == "state-shaped":
        value = draw(st.from_regex(r"[A-Za-z0-9_-]{20,80}", fullmatch=True))
        return value.encode(), value.encode()
    if kind == "garbage":
        value = draw(_PERCENT_GARBAGE)
        return value.encode(), value.encode()
    if kind == "huge":
        # Around our limit, below aiohttp's 8190-byte request line.
        size = draw(st.integers(MAX_QUERY_BYTES - 64, 6000))
        return b"Q" * size, b"Q" * 64
    # Unencoded bytes straight into the request line (browsers never do this; forgers can).
    data = draw(st.binary(min_size=1, max_size=40))
    return data, data


def _on_wire(key: str) -> bytes:
    return quote(key, safe="%").encode()


@st.composite
def _queries(draw: st.DrawFn, raw_bytes: bool = False) -> tuple[bytes, list[bytes]]:
    pairs = draw(st.lists(st.tuples(_REDIRECT_KEYS, _query_values(raw_bytes)), max_size=8))
    if pairs and draw(st.booleans()):
        pairs.append(draw(st.sampled_from(pairs)))  # a parameter twice
    parts = [_on_wire(key) + b"=" + value for key, (value, _) in pairs]
    separator = draw(st.sampled_from([b"&", b";", b"&&"]))
    return separator.join(parts), [echo for _, (_, echo) in pairs]


_HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
).map(lambda s: s.encode("latin-1"))


# --- the OAuth callback -------------------------------------------------------------------------


# Facebook Login's redirect target and Instagram Login's: the same refusals.
_CALLBACKS = [b"/oauth/callback", b"/oauth/instagram"]


@pytest.mark.parametrize("route", _CALLBACKS, ids=lambda r: r.decode())
@FUZZ
@given(query=_queries(), accept_language=st.none() | _HEADER_TEXT)
async def test_oauth_callback_survives_anything(
    fuzz_world: World,
    route: bytes,
    query: tuple[bytes, list[bytes]],
    accept_language: bytes | None,
) -> None:
    world = fuzz_world
    assert world.bot.http_port is not None
    before = await snapshot(world.db)
    raw_query, values = query
    headers = [(b"Accept-Language", accept_language)] if accept_language is not None else []
    response = await raw_request(world.bot.http_port, b"GET", route + b"?" + raw_query, headers)
    _check_common(f"GET {route.decode()}", response, values)
    if not _parser_refusal(response):
        assert response.status in (400, 414), response.status
        if response.status == 400:
            # One of the pages that depend on nothing from the request.
            assert response.body.decode() in _fixed_pages(world)
    await _unchanged(world, before)


@settings(FUZZ, max_examples=60)
@given(query=_queries(raw_bytes=True))
async def test_oauth_callback_survives_raw_bytes(
    fuzz_world: World, query: tuple[bytes, list[bytes]]
) -> None:
    world = fuzz_world
    assert world.bot.http_port is not None
    before = await snapshot(world.db)
    raw_query, values = query
    response = await raw_request(world.bot.http_port, b"GET", b"/oauth/callback?" + raw_query)
    _check_common("GET /oauth/callback (raw)", response, values)
    await _unchanged(world, before)


def _fixed_pages(world: World) -> set[str]:
    link = world.bot.bot_link()
    keys = ("bad_request", "state_unknown", "state_used", "state_expired")
    return {
        render(Texts(lang), message_key=k, bot_link=link) for lang in ("de", "en") for k in keys
    }


async def test_a_live_state_in_a_malformed_redirect_is_not_used(fuzz_world: World) -> None:
    """The one real state, sent twice or next to NUL, is refused without being consumed."""
    world = fuzz_world
    assert world.bot.http_port is not None
    url = world.login_url(ANNA)
    state = url.split("state=", 1)[1].split("&", 1)[0]
    before = await snapshot(world.db)
    for query in (
        f"state={state}&state={state}&code=abc",
        f"state={state}&code=a&code=b",
        f"state={state}&code=abc%00",
        f"state={state}&error=access_denied&error=access_denied",
    ):
        response = await raw_request(
            world.bot.http_port, b"GET", b"/oauth/callback?" + query.encode()
        )
        _check_common("GET /oauth/callback", response, [state.encode()])
        assert response.status == 400
    await _unchanged(world, before)
    # Still usable: the real login works afterwards.
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert page.status_code == 200 and "Connected" in page.text


# --- the Telegram webhook -----------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=15), inner, max_size=5)
    ),
    max_leaves=25,
)
_UPDATE_KEYS = st.sampled_from(
    ["message", "edited_message", "callback_query", "my_chat_member", "inline_query", "poll"]
)


@st.composite
def _update_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "update-shaped", "huge", "deep"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(_JSON)).encode()
    if kind == "huge":
        return b'{"update_id": 1, "pad": "' + b"x" * (MAX_UPDATE_BYTES + 1) + b'"}'
    if kind == "deep":
        depth = draw(st.integers(1_000, 50_000))
        return b'{"update_id": 1, "message": ' + b"[" * depth + b"]" * depth + b"}"
    update: dict[str, object] = {}
    if draw(st.booleans()):
        update["update_id"] = draw(
            st.integers(-(2**70), 2**70) | st.text(max_size=5) | st.floats() | st.booleans()
        )
    for _ in range(draw(st.integers(0, 2))):
        update[draw(_UPDATE_KEYS)] = draw(_JSON)
    return json.dumps(update).encode()


@FUZZ
@given(
    secret=st.sampled_from(["none", "wrong", "right", "right+space", "prefix"]),
    wrong=_HEADER_TEXT,
    content_type=st.sampled_from([b"application/json", b"text/plain", b"", b"multipart/form-data"]),
    body=_update_bodies(),
)
async def test_webhook_survives_anything(
    fuzz_world: World, secret: str, wrong: bytes, content_type: bytes, body: bytes
) -> None:
    world = fuzz_world
    assert world.bot.http_port is not None and world.settings.telegram_webhook_secret
    right = world.settings.telegram_webhook_secret.get_secret_value().encode()
    given_secret = {
        "none": None,
        "wrong": wrong,
        "right": right,
        "right+space": right + b" x",
        "prefix": right[: len(right) // 2],
    }[secret]
    headers = [(b"Content-Type", content_type)] if content_type else []
    if given_secret is not None:
        headers.append((SECRET_HEADER.encode(), given_secret))
    before = await snapshot(world.db)
    response = await raw_request(world.bot.http_port, b"POST", WEBHOOK_PATH.encode(), headers, body)
    _check_common(f"POST {WEBHOOK_PATH}", response, [body[:200]] if len(body) >= 8 else [])
    if _parser_refusal(response):
        await _unchanged(world, before)
        return
    if given_secret != right:
        assert response.status == 403
        await _unchanged(world, before)
        return
    assert response.status in (200, 400, 413), response.status
    if response.status != 200:
        await _unchanged(world, before)
        return
    # Accepted: a well-formed update of a kind the bot ignores. Only its id was claimed.
    update_id = json.loads(body)["update_id"]
    await _settled(world)
    await _unchanged(world, before, ignore=frozenset({"telegram_update"}))
    claimed = (await snapshot(world.db))["telegram_update"]
    assert update_id in [row[0] for row in claimed]


async def _settled(world: World) -> None:
    async with asyncio.timeout(5):
        while not world.bot.application.update_queue.empty():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.02)


# --- every route, every method, unknown paths -----------------------------------------------------

_METHODS = st.sampled_from(
    [b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS", b"TRACE", b"PROPFIND",
     b"CONNECT", b"get", b"BREW"]
)  # fmt: skip


def _paths(world: World) -> st.SearchStrategy[bytes]:
    runner = world.bot._runner
    assert runner is not None
    app = runner.app
    known = sorted({r.resource.canonical for r in app.router.routes() if r.resource is not None})
    return st.one_of(
        st.sampled_from([p.encode() for p in known]),
        st.sampled_from([p.encode() + suffix for p in known for suffix in (b"/", b"/x", b"%00")]),
        st.sampled_from(
            [b"/", b"//healthz", b"/HEALTHZ", b"/healthz/..", b"/oauth/callback/..%2f..%2f",
             b"/meta", b"/meta/", b"/telegram", b"/%ff", b"/.env", b"/static/../../etc/passwd",
             b"*"]
        ),
        st.text(max_size=40).map(lambda s: b"/" + quote(s).encode()),
    )  # fmt: skip


_FORM_BODIES = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda s: ("signed_request=" + quote(s)).encode()),
    st.from_regex(rb"signed_request=[A-Za-z0-9_\-.=]{0,120}", fullmatch=True),
    _JSON.map(lambda j: json.dumps(j).encode()),
)


@FUZZ
@given(data=st.data())
async def test_every_route_and_method_survives_anything(
    fuzz_world: World, data: st.DataObject
) -> None:
    world = fuzz_world
    assert world.bot.http_port is not None
    method = data.draw(_METHODS, label="method")
    path = data.draw(_paths(world), label="path")
    query, values = data.draw(st.none() | _queries(raw_bytes=True), label="query") or (b"", [])
    body = data.draw(st.just(b"") | _FORM_BODIES, label="body")
    content_type = data.draw(
        st.sampled_from(
            [b"application/x-www-form-urlencoded", b"application/json", b"text/plain", b""]
        ),
        label="content type",
    )
    headers = [(b"Content-Type", content_type)] if content_type else []
    target = path + (b"?" + query if query else b"")
    before = await snapshot(world.db)
    response = await raw_request(world.bot.http_port, method, target, headers, body)
    route = _route_name(method, path)
    _check_common(route, response, values + ([body] if len(body) >= 8 else []))
    await _unchanged(world, before)


def _route_name(method: bytes, path: bytes) -> str:
    if path in (b"/oauth/callback", b"/healthz", WEBHOOK_PATH.encode()) or (
        path.startswith(b"/meta/") and len(path) > len(b"/meta/")
    ):
        verb = method.decode() if method in (b"GET", b"POST", b"HEAD") else "other method"
        return f"{verb} {path.decode()}"
    return "unknown path"


@FUZZ
@given(query=st.none() | _queries(), accept=_HEADER_TEXT)
async def test_health_check_survives_anything(
    fuzz_world: World, query: tuple[bytes, list[bytes]] | None, accept: bytes
) -> None:
    world = fuzz_world
    assert world.bot.http_port is not None
    raw_query, values = query or (b"", [])
    target = b"/healthz" + (b"?" + raw_query if raw_query else b"")
    before = await snapshot(world.db)
    response = await raw_request(world.bot.http_port, b"GET", target, [(b"Accept", accept)])
    _check_common("GET /healthz", response, values)
    if not _parser_refusal(response):
        assert response.status in (200, 414)
        if response.status == 200:
            assert json.loads(response.body) == {"status": "ok", "database": True}
    await _unchanged(world, before)


async def test_security_headers_on_every_kind_of_answer(fuzz_world: World) -> None:
    """200, 400, 403, 404, 405, 413 and 414 alike, on every route (Meta's included once they
    exist: the check is the middleware's, not the route's)."""
    world = fuzz_world
    port = world.bot.http_port
    assert port is not None
    hook = WEBHOOK_PATH.encode()
    too_long = b"?x=" + b"a" * (MAX_QUERY_BYTES + 1)
    cases = [
        (b"GET", b"/healthz", b"", 200),
        (b"GET", b"/oauth/callback", b"", 400),
        (b"POST", hook, b"{}", 403),
        (b"GET", b"/nowhere", b"", 404),
        (b"DELETE", b"/oauth/callback", b"", 405),
        (b"GET", hook, b"", 405),
        (b"GET", b"/healthz" + too_long, b"", 414),
        (b"POST", hook + too_long, b"", 414),
        (b"GET", b"/nowhere" + too_long, b"", 414),
    ]
    for method, target, body, status in cases:
        response = await raw_request(port, method, target, [], body)
        assert response.status == status, (method, target[:40])
        _check_headers(response)
    secret = world.settings.telegram_webhook_secret
    assert secret is not None
    big = b"{" + b" " * MAX_UPDATE_BYTES + b"}"
    headers = [(SECRET_HEADER.encode(), secret.get_secret_value().encode())]
    response = await raw_request(port, b"POST", hook, headers, big)
    assert response.status == 413
    _check_headers(response)


def test_report_figures() -> None:
    """Printed with -s (the terminal summary shows them anyway)."""
    print(
        "\nfuzz: tried",
        dict(TRIED),
        "refused by aiohttp's parser",
        dict(PARSER_REFUSED),
        "of which quoted the request line",
        dict(ECHOED_BY_PARSER),
    )
