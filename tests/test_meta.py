"""Meta's callbacks (deauthorize, data deletion, the deletion status page) and /forget.

The signed_request check is a pure function, tested on its own (table-driven and with hypothesis);
the routes run end to end on SQLite and PostgreSQL: a verified callback changes exactly what it
should and tells the managers once, anything else gets 4xx and changes nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.meta import (
    ALGORITHM,
    MAX_SIGNED_REQUEST,
    SignatureProblem,
    SignedRequest,
    parse_signed_request,
    sign_request,
)
from bot.models import utcnow
from sandbox.facebook import FbPage, FbUser, IgAccount
from sandbox.telegram import TgUser
from tests.db_snapshot import delivered, snapshot
from tests.world import ANNA, BEN, MANAGER, World, anna_on_facebook, close_world, make_world
from web_callback.app import DATA_DELETION_PATH, DEAUTHORIZE_PATH

SECRET = "test-app-secret"
TEAM = TgUser(id=9001, first_name="Team", username="brand_team", language_code="de")

TRIED: Counter[str] = Counter()


class _Summary:
    @staticmethod
    def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
        if TRIED:
            terminalreporter.section("Meta callbacks: refused inputs")
            for name, count in sorted(TRIED.items()):
                terminalreporter.write_line(f"{name:<44} {count:>5} tried, all refused")


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    manager = request.config.pluginmanager
    if not manager.has_plugin("connect-bot-meta-summary"):
        manager.register(_Summary(), "connect-bot-meta-summary")
    yield


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(payload: object, secret: str = SECRET, *, pad: bool = False) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
    if not pad:
        body = body.rstrip("=")
    sig = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return _b64(sig) + "." + body


GOOD = {"algorithm": ALGORITHM, "user_id": "10230845", "issued_at": 1_764_000_000}

# --- the pure check ------------------------------------------------------------------------------


def test_a_signed_request_from_meta_is_read() -> None:
    assert parse_signed_request(sign_request(GOOD, app_secret=SECRET), app_secret=SECRET) == (
        SignedRequest("10230845", 1_764_000_000)
    )
    # Padding, as some encoders send it: the signature covers the segment exactly as received.
    padded = _signed({**GOOD, "user_id": "12"}, pad=True)
    assert "=" in padded
    assert parse_signed_request(padded, app_secret=SECRET) == SignedRequest("12", 1_764_000_000)
    # A numeric user id and a missing issued_at are fine.
    numeric = _signed({"algorithm": ALGORITHM, "user_id": 42})
    assert parse_signed_request(numeric, app_secret=SECRET) == SignedRequest("42", None)


def _tamper_payload() -> str:
    sig, body = sign_request(GOOD, app_secret=SECRET).split(".")
    forged = _b64(json.dumps({**GOOD, "user_id": "999"}).encode())
    return f"{sig}.{forged}"


def _tamper_signature() -> str:
    sig, body = sign_request(GOOD, app_secret=SECRET).split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[0] ^= 1
    return _b64(bytes(raw)) + "." + body


def _short_signature() -> str:
    sig, body = sign_request(GOOD, app_secret=SECRET).split(".")
    return sig[:20] + "." + body


def _sha1_signature() -> str:
    body = _b64(json.dumps(GOOD).encode())
    return _b64(hmac.new(SECRET.encode(), body.encode(), hashlib.sha1).digest()) + "." + body


REFUSED: list[tuple[str, str, SignatureProblem]] = [
    ("empty", "", SignatureProblem.MALFORMED),
    ("no dot", "abc", SignatureProblem.MALFORMED),
    ("three parts", sign_request(GOOD, app_secret=SECRET) + ".x", SignatureProblem.MALFORMED),
    ("empty signature", "." + _b64(b"{}"), SignatureProblem.MALFORMED),
    ("empty payload", _b64(b"x" * 32) + ".", SignatureProblem.MALFORMED),
    ("standard base64", "ab+/cd==." + _b64(b"{}"), SignatureProblem.MALFORMED),
    ("space", sign_request(GOOD, app_secret=SECRET).replace(".", " ."), SignatureProblem.MALFORMED),
    ("impossible length", "abcde." + _b64(b"{}"), SignatureProblem.MALFORMED),
    ("too long", _signed({**GOOD, "pad": "x" * MAX_SIGNED_REQUEST}), SignatureProblem.MALFORMED),
    ("another app's secret", _signed(GOOD, "other-secret"), SignatureProblem.BAD_SIGNATURE),
    ("payload changed", _tamper_payload(), SignatureProblem.BAD_SIGNATURE),
    ("signature changed", _tamper_signature(), SignatureProblem.BAD_SIGNATURE),
    ("signature cut", _short_signature(), SignatureProblem.BAD_SIGNATURE),
    ("HMAC-SHA1", _sha1_signature(), SignatureProblem.BAD_SIGNATURE),
    ("not JSON", _b64(hmac.new(SECRET.encode(), b"bm90", hashlib.sha256).digest()) + ".bm90",
     SignatureProblem.MALFORMED),
    ("JSON array", _signed([GOOD]), SignatureProblem.MALFORMED),
    ("JSON string", _signed("user_id"), SignatureProblem.MALFORMED),
    ("no algorithm", _signed({"user_id": "1"}), SignatureProblem.BAD_ALGORITHM),
    ("lower-case algorithm", _signed({**GOOD, "algorithm": "hmac-sha256"}),
     SignatureProblem.BAD_ALGORITHM),
    ("other algorithm", _signed({**GOOD, "algorithm": "HMAC-SHA1"}),
     SignatureProblem.BAD_ALGORITHM),
    ("algorithm none", _signed({**GOOD, "algorithm": None}), SignatureProblem.BAD_ALGORITHM),
    ("no user_id", _signed({"algorithm": ALGORITHM}), SignatureProblem.NO_USER),
    ("empty user_id", _signed({**GOOD, "user_id": ""}), SignatureProblem.NO_USER),
    ("user_id zero", _signed({**GOOD, "user_id": 0}), SignatureProblem.NO_USER),
    ("user_id true", _signed({**GOOD, "user_id": True}), SignatureProblem.NO_USER),
    ("user_id list", _signed({**GOOD, "user_id": ["1"]}), SignatureProblem.NO_USER),
    ("user_id with a slash", _signed({**GOOD, "user_id": "1/2"}), SignatureProblem.NO_USER),
    ("user_id too long", _signed({**GOOD, "user_id": "1" * 65}), SignatureProblem.NO_USER),
]  # fmt: skip


@pytest.mark.parametrize(("name", "signed", "problem"), REFUSED, ids=[r[0] for r in REFUSED])
def test_anything_else_is_refused(name: str, signed: str, problem: SignatureProblem) -> None:
    assert parse_signed_request(signed, app_secret=SECRET) is problem


def test_without_an_app_secret_nothing_is_accepted() -> None:
    unsigned = _signed(GOOD, "")
    assert parse_signed_request(unsigned, app_secret="") is SignatureProblem.BAD_SIGNATURE


PURE = settings(max_examples=300, deadline=None, database=None)


@PURE
@given(st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9_=-]{0,90}\.[A-Za-z0-9_=-]{0,200}"))
def test_random_text_is_never_accepted(text: str) -> None:
    TRIED["parse_signed_request: random text"] += 1
    assert isinstance(parse_signed_request(text, app_secret=SECRET), SignatureProblem)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


def _model(payload: object) -> str | None:
    """What the check should make of a correctly signed payload: the user id, or None."""
    if not isinstance(payload, dict) or payload.get("algorithm") != ALGORITHM:
        return None
    user_id = payload.get("user_id")
    if type(user_id) is int and user_id > 0:
        return str(user_id)
    if isinstance(user_id, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", user_id):
        return user_id
    return None


@PURE
@given(
    payload=st.dictionaries(
        st.sampled_from(["algorithm", "user_id", "issued_at", "code", "x"]), _JSON, max_size=5
    )
    | _JSON,
    algorithm=st.none() | st.sampled_from([ALGORITHM, "hmac-sha256", "HMAC-SHA1", ""]),
    user_id=st.none() | _JSON | st.from_regex(r"[0-9]{1,20}", fullmatch=True),
)
def test_signed_payloads_are_accepted_only_when_complete(
    payload: object, algorithm: str | None, user_id: object
) -> None:
    """Correctly signed (so past the signature check): accepted exactly when the algorithm is
    HMAC-SHA256 and there is a usable user id."""
    if isinstance(payload, dict):
        if algorithm is not None:
            payload["algorithm"] = algorithm
        if user_id is not None:
            payload["user_id"] = user_id
    result = parse_signed_request(_signed(payload), app_secret=SECRET)
    expected = _model(payload)
    if expected is None:
        assert isinstance(result, SignatureProblem)
        TRIED["parse_signed_request: signed, unusable"] += 1
    else:
        assert isinstance(result, SignedRequest) and result.user_id == expected


# --- end to end ----------------------------------------------------------------------------------


def _url(world: World, path: str) -> str:
    return f"http://127.0.0.1:{world.bot.http_port}{path}"


def _secret(world: World) -> str:
    assert world.settings.facebook_app_secret is not None
    return world.settings.facebook_app_secret.get_secret_value()


async def _meta_post(world: World, path: str, facebook_user_id: str) -> httpx.Response:
    signed = sign_request(
        # Meta signs the moment of the call; an old signed_request is refused (test_input_output).
        {"algorithm": ALGORITHM, "user_id": facebook_user_id, "issued_at": int(time.time())},
        app_secret=_secret(world),
    )
    return await world.browser.post(_url(world, path), data={"signed_request": signed})


async def _rows(world: World, query: str) -> list[tuple[object, ...]]:
    async with world.db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(sa.text(query))).all()]


def _ben_on_facebook() -> FbUser:
    ig = IgAccount(id="ig-200", username="ben.cooks", followers_count=777)
    return FbUser(
        id="fb-ben", name="Ben", pages=[FbPage(id="p-300", name="Ben Cooks", instagram=ig)]
    )


async def _connect_anna_and_ben(world: World) -> None:
    """Both connected, in Maria's brand, whose team chat is TEAM's (notices go to a brand's
    current managers and its team chat)."""
    world.telegram.send_text(TEAM, "/start")  # the team chat exists and has talked to the bot
    await world.settle()
    anna, ben = await world.invite("anna.bakes"), await world.invite("ben.cooks")
    await world.through_checks(ANNA, anna)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.through_checks(BEN, ben)
    await world.facebook_login(BEN, _ben_on_facebook())
    await world.telegram.wait_for(MANAGER.id, "@ben.cooks is connected", timeout=10)
    [brand] = await world.db.brands.brands()  # made by Maria's first /invite, managed by her
    assert brand.id is not None
    await world.db.brands.set_team_chat(brand.id, TEAM.id)
    await _quiet(world)


async def _quiet(world: World) -> None:
    """Until the outbox has nothing left to send."""
    async with asyncio.timeout(15):
        while await _rows(world, "SELECT id FROM outbox WHERE status = 'pending'"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await world.settle()


def _count(world: World, chat_id: int, text: str) -> int:
    """How often the text arrived (notices to one chat may come combined in one message)."""
    return sum(m.text.lower().count(text.lower()) for m in world.telegram.messages(chat_id))


async def test_deauthorize_ends_the_connection_and_tells_the_managers_once(world: World) -> None:
    await _connect_anna_and_ben(world)
    answer = await _meta_post(world, DEAUTHORIZE_PATH, "fb-anna")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    assert answer.headers["Referrer-Policy"] == "no-referrer"

    await world.telegram.wait_for(MANAGER.id, "removed the app on Facebook")
    await world.telegram.wait_for(TEAM.id, "hat die App auf Facebook entfernt")  # TEAM's German
    # Anna hears it too: what ended, that the brand knows, and what to do if it was a mistake.
    told = await world.telegram.wait_for(ANNA.id, "You removed the app on Facebook")
    assert "@anna.bakes is no longer connected" in told.text
    # As the health check's notice of the same: Reconnect, which works on this connection.
    assert "If that was a mistake, tap Reconnect" in told.text
    [(invitation_id,)] = await _rows(world, "SELECT id FROM invitation WHERE handle = 'anna.bakes'")
    assert told.button("Reconnect")["callback_data"] == f"rn:{invitation_id}"
    manager = world.telegram.messages(MANAGER.id)[-1].text
    assert "If it was a mistake, @anna.bakes can reconnect with one tap." in manager
    connections = dict(
        (handle, (status, ended is not None, token))
        for handle, status, ended, token in await _rows(
            world,
            "SELECT i.handle, c.status, c.ended_at, c.token_encrypted FROM connection c "
            "JOIN invitation i ON i.id = c.invitation_id",
        )
    )
    assert connections["anna.bakes"] == ("disconnected", True, None)
    assert connections["ben.cooks"][0] == "active" and connections["ben.cooks"][2]
    kinds = [k for (k,) in await _rows(world, "SELECT kind FROM invitation_event")]
    assert kinds.count("deauthorized") == 1

    # Meta repeats callbacks it did not see answered: nothing changes, nobody is told twice.
    await delivered(world.db)  # the cards' last edits may still be on their way
    before = await snapshot(world.db)
    again = await _meta_post(world, DEAUTHORIZE_PATH, "fb-anna")
    assert again.status_code == 200
    await asyncio.sleep(1.5)  # longer than the notices' gathering delay
    assert await snapshot(world.db) == before
    assert _count(world, MANAGER.id, "removed the app on Facebook") == 1
    assert _count(world, TEAM.id, "entfernt") == 1
    assert _count(world, ANNA.id, "You removed the app on Facebook") == 1
    # Reconnect: the Facebook window for this connection.
    world.telegram.press(ANNA, told, "Reconnect")
    await world.settle()
    assert "Reconnect your Instagram account" in world.telegram.last_message(ANNA.id).text
    # Ben's manager heard nothing about Ben.
    assert not any("ben.cooks" in m.text and "removed" in m.text
                   for m in world.telegram.messages(MANAGER.id))  # fmt: skip


async def test_data_deletion_deletes_for_real_and_shows_its_status(world: World) -> None:
    await _connect_anna_and_ben(world)
    answer = await _meta_post(world, DATA_DELETION_PATH, "fb-anna")
    assert answer.status_code == 200
    receipt = answer.json()
    assert set(receipt) == {"url", "confirmation_code"}
    code = receipt["confirmation_code"]
    assert receipt["url"] == f"{world.settings.public_url}/meta/deletion-status/{code}"

    # Nothing Facebook told us about Anna is left, except the request (to show its status).
    dump = repr(await snapshot(world.db, ignore=frozenset({"deletion_request"})))
    for value in ("fb-anna", "p-100", "Anna Bakes", "ig-100", "12,345"):
        assert value not in dump, value
    assert "fb-ben" in dump and "Ben Cooks" in dump  # Ben keeps his connection
    assert await _rows(
        world, "SELECT status, deleted_connections, completed_at IS NOT NULL FROM deletion_request"
    ) == [("completed", 1, True)]
    assert await _rows(world, "SELECT status FROM invitation WHERE handle = 'anna.bakes'") == [
        ("revoked",)
    ]
    events = await _rows(world, "SELECT kind, detail, status FROM invitation_event")
    assert ("data_deleted", "meta", "revoked") in events
    await world.telegram.wait_for(MANAGER.id, "asked me, for @anna.bakes, to delete")
    await world.telegram.wait_for(TEAM.id, "Daten zu löschen")

    # The status page, in the asker's language; unknown codes get a 404 that echoes nothing.
    path = urlsplit(receipt["url"]).path
    page = await world.browser.get(_url(world, path), headers={"Accept-Language": "en-US"})
    assert page.status_code == 200 and "Your data was deleted on" in page.text
    assert code in page.text and "fb-anna" not in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    german = await world.browser.get(_url(world, path), headers={"Accept-Language": "de-AT,de"})
    assert "Deine Daten wurden am" in german.text and 'lang="de"' in german.text
    for unknown in ("0" * 32, code[:-1] + ("0" if code[-1] != "0" else "1"), "x" * 40, code[:8]):
        missing = await world.browser.get(_url(world, f"/meta/deletion-status/{quote(unknown)}"))
        assert missing.status_code == 404 and "unknown" in missing.text, unknown
        assert unknown not in missing.text

    # Someone we never stored anything about: a request all the same, completed at once.
    other = await _meta_post(world, DATA_DELETION_PATH, "fb-stranger")
    assert other.status_code == 200 and other.json()["confirmation_code"] != code
    rows = await _rows(world, "SELECT facebook_user_id, status, deleted_connections "
                              "FROM deletion_request ORDER BY id")  # fmt: skip
    assert rows == [("fb-anna", "completed", 1), ("fb-stranger", "completed", 0)]
    await asyncio.sleep(1.5)
    assert _count(world, MANAGER.id, "to delete their data") == 1


async def test_an_interrupted_deletion_is_finished_by_the_periodic_job(world: World) -> None:
    await _connect_anna_and_ben(world)
    # As if the process died between recording the request and deleting.
    request = await world.db.privacy.open_deletion_request(
        facebook_user_id="fb-ben", confirmation_code="ab" * 16
    )
    assert await world.bot.privacy.finish_deletions() == 0  # too fresh: maybe still running
    async with world.db.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE deletion_request SET created_at = :t"),
            {"t": utcnow() - timedelta(minutes=5)},
        )
    assert "finish_deletions" in [job.name for job in world.bot.jobs.jobs]
    assert await world.bot.privacy.finish_deletions() == 1
    assert await world.bot.privacy.finish_deletions() == 0  # once only
    found = await world.db.privacy.deletion_request(request.confirmation_code)
    assert found is not None and found.status == "completed" and found.deleted_connections == 1
    assert "fb-ben" not in repr(await snapshot(world.db, ignore=frozenset({"deletion_request"})))
    await world.telegram.wait_for(MANAGER.id, "for @ben.cooks, to delete")


FORGED_FORMS: list[tuple[str, dict[str, str], bytes, int]] = [
    ("no body", {}, b"", 400),
    ("no field", {}, b"other=1", 400),
    ("field twice", {}, b"signed_request=a.b&signed_request=a.b", 400),
    ("another app's secret", {}, b"", 403),
    ("payload changed", {}, b"", 403),
    ("wrong algorithm", {}, b"", 400),
    ("no user_id", {}, b"", 400),
    ("JSON instead of a form", {"Content-Type": "application/json"}, b'{"signed_request":"a.b"}',
     415),
    ("multipart", {"Content-Type": "multipart/form-data; boundary=x"}, b"--x--", 415),
    ("not ASCII", {"Content-Type": "application/x-www-form-urlencoded"},
     "signed_request=ä.ö".encode(), 400),
    ("too many fields", {}, b"&".join(b"f%d=1" % i for i in range(40)), 400),
    ("too big", {}, b"signed_request=" + b"A" * (9 * 1024), 413),
]  # fmt: skip


def _forged_body(name: str, body: bytes, secret: str) -> bytes:
    signed = {
        "another app's secret": _signed({**GOOD, "user_id": "fb-anna"}, "not-the-secret"),
        "payload changed": _tamper_payload(),
        "wrong algorithm": _signed(
            {**GOOD, "user_id": "fb-anna", "algorithm": "HMAC-SHA1"}, secret
        ),
        "no user_id": _signed({"algorithm": ALGORITHM}, secret),
    }.get(name)
    return ("signed_request=" + quote(signed)).encode() if signed else body


@pytest.mark.parametrize("path", [DEAUTHORIZE_PATH, DATA_DELETION_PATH])
async def test_forged_callbacks_get_4xx_and_change_nothing(world: World, path: str) -> None:
    await _connect_anna_and_ben(world)
    before = await snapshot(world.db)
    sent_before = len(world.telegram.requests)
    async with httpx.AsyncClient() as http:
        for name, headers, body, status in FORGED_FORMS:
            answer = await http.post(
                _url(world, path),
                content=_forged_body(name, body, _secret(world)),
                headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
            )
            TRIED[f"POST {path} (forged, end to end)"] += 1
            assert answer.status_code == status, name
            assert answer.headers["X-Frame-Options"] == "DENY"
        for method in ("GET", "PUT", "DELETE"):
            answer = await http.request(method, _url(world, path))
            assert answer.status_code == 405
    await asyncio.sleep(0.3)
    assert await snapshot(world.db) == before
    assert len(world.telegram.requests) == sent_before


# Correctly signed but unusable payloads, and correctly shaped but wrongly signed ones: the two
# kinds the generic route fuzzer (tests/test_fuzz_http.py) cannot make, since it has no secret.
_BAD_PAYLOADS = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "algorithm": st.sampled_from([ALGORITHM, "hmac-sha256", "HMAC-SHA1"]) | _JSON,
            "user_id": st.from_regex(r"[0-9]{1,20}", fullmatch=True) | _JSON,
            "issued_at": _JSON,
        },
    ),
    _JSON,
).filter(lambda p: _model(p) is None)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    payload=_BAD_PAYLOADS,
    right_secret=st.booleans(),
    path=st.sampled_from([DEAUTHORIZE_PATH, DATA_DELETION_PATH]),
)
async def test_signed_garbage_changes_nothing(
    fuzz_meta_world: World, payload: object, right_secret: bool, path: str
) -> None:
    world = fuzz_meta_world
    secret = _secret(world) if right_secret else "guess"
    if not right_secret and isinstance(payload, dict):
        payload = {**payload, "algorithm": ALGORITHM, "user_id": "fb-anna"}
    before = await snapshot(world.db)
    answer = await world.browser.post(
        _url(world, path), data={"signed_request": _signed(payload, secret)}
    )
    TRIED[f"POST {path} (signed garbage)"] += 1
    assert answer.status_code == (403 if not right_secret else 400)
    assert await snapshot(world.db) == before


@pytest.fixture
async def fuzz_meta_world(tmp_path: Path) -> AsyncIterator[World]:
    w = await make_world(f"sqlite+aiosqlite:///{tmp_path}/meta.sqlite3")
    try:
        token = await w.invite("anna.bakes")
        await w.through_checks(ANNA, token)
        await w.facebook_login(ANNA, anna_on_facebook())
        await _quiet(w)
        await asyncio.sleep(0.3)  # the last delivery's bookkeeping
        yield w
    finally:
        await close_world(w)


_FORM_BODIES = st.one_of(
    st.binary(max_size=400),
    st.lists(
        st.tuples(
            st.sampled_from(["signed_request", "Signed_Request", "signed_request[]", "x", ""]),
            st.text(max_size=120),
        ),
        max_size=4,
    ).map(lambda pairs: urlencode(pairs).encode()),
    st.from_regex(rb"signed_request=[A-Za-z0-9_\-.=%]{0,300}", fullmatch=True),
)
_CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=zz",
        "",
    ]
)
FUZZ_META = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ_META
@given(
    path=st.sampled_from([DEAUTHORIZE_PATH, DATA_DELETION_PATH]),
    body=_FORM_BODIES,
    content_type=_CONTENT_TYPES,
)
async def test_any_form_at_the_meta_callbacks_gets_4xx_and_changes_nothing(
    fuzz_meta_world: World, path: str, body: bytes, content_type: str | None
) -> None:
    world = fuzz_meta_world
    before = await snapshot(world.db)
    headers = {"Content-Type": content_type} if content_type is not None else {}
    answer = await world.browser.post(_url(world, path), content=body, headers=headers)
    TRIED[f"POST {path} (any form)"] += 1
    assert answer.status_code in (400, 403, 413, 415), (answer.status_code, body[:80])
    assert answer.headers["Cache-Control"] == "no-store"
    if len(body) >= 8:
        assert body not in answer.content
    assert await snapshot(world.db) == before


@FUZZ_META
@given(code=st.text(max_size=80) | st.from_regex(r"[0-9a-f]{32}", fullmatch=True))
async def test_any_code_at_the_status_page_gets_404_and_is_not_echoed(
    fuzz_meta_world: World, code: str
) -> None:
    world = fuzz_meta_world
    before = await snapshot(world.db)
    answer = await world.browser.get(
        _url(world, "/meta/deletion-status/" + quote(code, safe="")),
        headers={"Accept-Language": "de"},
    )
    TRIED["GET /meta/deletion-status/{code} (unknown)"] += 1
    assert answer.status_code == 404
    if len(code.strip()) >= 12:  # shorter ones may be words of the page itself
        assert code not in answer.text
    assert await snapshot(world.db) == before


# --- /forget -------------------------------------------------------------------------------------


async def test_an_influencer_can_ask_the_bot_to_forget_them(world: World) -> None:
    await _connect_anna_and_ben(world)
    world.telegram.send_text(ANNA, "/forget")
    await world.settle()
    ask = world.telegram.last_message(ANNA.id)
    assert "Should I forget you?" in ask.text and "@anna.bakes" in ask.text
    assert "Maria" in ask.text  # who will be told
    world.telegram.press(ANNA, ask, "No, keep it")
    await world.settle()
    assert "nothing was deleted" in world.telegram.last_message(ANNA.id).text
    assert await _rows(world, "SELECT COUNT(*) FROM connection") == [(2,)]

    world.telegram.send_text(ANNA, "/forget")
    await world.settle()
    world.telegram.press(ANNA, world.telegram.last_message(ANNA.id), "Yes, forget me")
    await world.settle()
    assert "your connection data is deleted" in world.telegram.last_message(ANNA.id).text
    await world.telegram.wait_for(MANAGER.id, "@anna.bakes asked me to forget them")
    await world.telegram.wait_for(TEAM.id, "hat mich gebeten, die gespeicherten Daten zu vergessen")
    assert world.graph.revoked == ["fb-anna"]  # our access at Facebook is withdrawn too
    dump = repr(await snapshot(world.db))
    for value in ("fb-anna", "p-100", "Anna Bakes", "ig-100", "12,345"):
        assert value not in dump, value
    assert "fb-ben" in dump
    assert ("data_deleted", "forget") in await _rows(
        world, "SELECT kind, detail FROM invitation_event"
    )

    # Pressing the old button again, or asking again: nothing left.
    world.telegram.send_text(ANNA, "/forget")
    await world.settle()
    assert "nothing to forget" in world.telegram.last_message(ANNA.id).text
    await asyncio.sleep(1.5)
    assert _count(world, MANAGER.id, "asked me to forget them") == 1
    # Someone who never was invited.
    stranger = TgUser(id=7999, first_name="Sam", language_code="de")
    world.telegram.send_text(stranger, "/forget")
    await world.settle()
    assert "nichts über dich gespeichert" in world.telegram.last_message(stranger.id).text


async def test_a_forged_forget_button_changes_nothing(world: World) -> None:
    await _connect_anna_and_ben(world)
    before = await snapshot(world.db, ignore=frozenset({"person"}))
    message = world.telegram.last_message(ANNA.id)
    for data in ("p1:", "p1:forget-all", "p1:keep:5", "p1:" + "x" * 60):
        world.telegram.press_data(ANNA, message.message_id, data)
    await world.settle()
    assert await snapshot(world.db, ignore=frozenset({"person"})) == before
    assert world.graph.revoked == []
