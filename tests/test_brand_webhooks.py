"""The platform's signed webhooks (issue 12), end to end: the real bot against the stand-ins, a real
aiohttp receiver on loopback standing in for the platform, both database engines.

The signature is checked by an implementation of its own, written from docs/webhooks.md (the
hmac module, not the bot's code)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web

from bot.models import Connection, utcnow
from bot.webhooks import UrlProblem, address_problem, check_url
from sandbox.telegram import TgUser
from tests.world import ANNA, MANAGER, World, anna_on_facebook, close_world, make_world

FAST = dict(
    webhook_allow_loopback=True, webhook_first_retry_seconds=0.05, webhook_timeout_seconds=1.0
)
PAYLOAD_KEYS = {
    "id",
    "type",
    "created",
    "brand",
    "invitation",
    "instagram_id",
    "instagram_username",
    "page_id",
    "path",
    "health",
    "reason",
}


# --- the platform's side: written from docs/webhooks.md --------------------------------------


def verify(secret: str, header: str, raw: bytes, *, tolerance: int = 300) -> bool:
    """Connect-Bot-Signature: t=<unix>,v1=<hex>; v1 = HMAC-SHA256(secret, "<t>.<raw body>")."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(
        secret.encode("utf-8"), f"{timestamp}.".encode() + raw, hashlib.sha256
    ).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in fields.get("v1", []))


@dataclass
class Received:
    headers: dict[str, str]
    raw: bytes

    @property
    def event(self) -> dict[str, Any]:
        data = json.loads(self.raw)
        assert isinstance(data, dict)
        return data


@dataclass
class Platform:
    """A receiver on loopback. `answers`: what to do with the next requests, in turn (a status
    code, or "hang" until `release` is set); then 200."""

    answers: list[int | str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/connect-bot", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hooks/connect-bot"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        self.arrived.set()
        answer = self.answers.pop(0) if self.answers else 200
        if answer == "hang":
            await self.release.wait()
            answer = 200
        if isinstance(answer, str):
            await asyncio.sleep(float(answer))
            answer = 200
        return web.Response(status=answer, text="ok")

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received

    def types(self) -> list[str]:
        return [r.event["type"] for r in self.received]


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    w = await make_world(database_url, **FAST)  # type: ignore[arg-type]
    try:
        yield w
    finally:
        await close_world(w)


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    p = Platform()
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def _brand_id(world: World) -> int:
    if not await world.rows("SELECT id FROM brand"):
        await world.say(MANAGER, "/list")  # the first admin gets the first brand
    return int(str((await world.rows("SELECT min(id) FROM brand"))[0][0]))


async def _set_webhook(world: World, brand_id: int, url: str, who: TgUser = MANAGER) -> str:
    """/webhook <brand> <url>; returns the reply's text (the secret is in it once)."""
    replies = await world.say(who, f"/webhook {brand_id} {url}")
    return replies[-1].text


def _secret(text: str) -> str:
    found = re.search(r"whsec_[A-Za-z0-9_-]+", text)
    assert found is not None, text
    return found.group(0)


async def _deliveries(world: World) -> list[tuple[object, ...]]:
    return await world.rows(
        "SELECT event_id, type, status, attempts, last_status_code, last_error, brand_id "
        "FROM webhook_delivery ORDER BY id"
    )


async def _settled_deliveries(world: World, timeout: float = 15.0) -> list[tuple[object, ...]]:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while True:
            rows = await _deliveries(world)
            if rows and all(r[2] != "pending" for r in rows):
                return rows
            await asyncio.sleep(0.05)


# --- the connect flow -------------------------------------------------------------------------


async def test_a_connection_is_reported_signed_and_in_order(
    world: World, platform: Platform
) -> None:
    token = await world.invite("@anna.bakes")
    brand_id = await _brand_id(world)
    reply = await _set_webhook(world, brand_id, platform.url)
    secret = _secret(reply)
    assert platform.url in reply
    stored = await world.rows("SELECT webhook_url, webhook_secret_sealed FROM brand")
    assert stored[0][0] == platform.url and secret not in str(stored[0][1])  # sealed, not plain

    await world.through_checks(ANNA, token)
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert page.status_code == 200
    await world.revoke("@anna.bakes")
    await platform.wait_for(3)
    assert platform.types() == [
        "invitation.opened",
        "connection.connected",
        "connection.disconnected",
    ]
    for r in platform.received:
        assert verify(secret, r.headers["Connect-Bot-Signature"], r.raw)
        assert not verify("whsec_wrong", r.headers["Connect-Bot-Signature"], r.raw)
        assert r.headers["Connect-Bot-Event-Id"] == r.event["id"]
        assert r.headers["Content-Type"] == "application/json"
    events = [r.event for r in platform.received]
    assert len({e["id"] for e in events}) == 3 and all(e["id"].startswith("evt_") for e in events)
    connected = events[1]
    assert set(connected) == PAYLOAD_KEYS
    assert connected["brand"] == {"id": brand_id, "name": "Brandly"}
    assert connected["invitation"]["handle"].lstrip("@") == "anna.bakes"
    assert connected["instagram_id"] == "ig-100" and connected["page_id"] == "p-100"
    assert connected["path"] == "facebook"
    assert connected["reason"] is None and connected["created"].endswith("Z")
    assert events[2]["reason"] == "revoked"
    # Never a token: the stored (encrypted) one decrypts to nothing any body contains.
    tokens = await world.rows("SELECT token_encrypted FROM connection")
    for (sealed,) in tokens:
        plain = world.bot.vault.open(str(sealed)) if sealed else None
        assert plain is None or all(plain not in r.raw.decode() for r in platform.received)

    rows = await _settled_deliveries(world)
    assert [r[2] for r in rows] == ["delivered"] * 3
    shown = (await world.say(MANAGER, f"/webhook {brand_id}"))[-1].text
    assert platform.url in shown and "connection.connected" in shown and "delivered" in shown
    assert "connection.connected @anna.bakes · ✅ delivered" in shown, shown
    assert secret not in shown
    # Times as the manager writes them (29 November 2026, 14:09 UTC), not ISO.
    today = utcnow()
    day = f"{today.day} {today:%B} {today.year}, "
    assert f"Set on {day}" in shown and f"• {day}" in shown, shown
    assert not re.search(r"\d{4}-\d\d-\d\d", shown), shown


async def test_a_failed_login_carries_its_reason(world: World, platform: Platform) -> None:
    token = await world.invite("@anna.bakes")
    brand_id = await _brand_id(world)
    await _set_webhook(world, brand_id, platform.url)
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook(is_published=False))
    await platform.wait_for(2)
    failed = platform.received[1].event
    assert failed["type"] == "connection.failed" and failed["reason"] == "page_unpublished"


# --- retries and restarts ---------------------------------------------------------------------


async def test_a_500_is_retried_with_the_same_event_id(world: World, platform: Platform) -> None:
    brand_id = await _brand_id(world)
    secret = _secret(await _set_webhook(world, brand_id, platform.url))
    platform.answers = [500, 200]
    await world.say(MANAGER, f"/webhook {brand_id} test")
    await platform.wait_for(2)
    first, second = platform.received
    assert first.event["id"] == second.event["id"] and first.event["type"] == "ping"
    assert verify(secret, second.headers["Connect-Bot-Signature"], second.raw)
    rows = await _settled_deliveries(world)
    assert [(r[2], r[3], r[4]) for r in rows] == [("delivered", 2, 200)]
    sample = world.bot.metrics.registry.get_sample_value
    name = "connectbot_webhook_deliveries_total"
    assert sample(name, {"outcome": "retry"}) == 1 and sample(name, {"outcome": "delivered"}) == 1


async def test_a_timeout_is_retried(world: World, platform: Platform) -> None:
    brand_id = await _brand_id(world)
    await _set_webhook(world, brand_id, platform.url)
    platform.answers = ["3"]  # answers after 3 s; the bot waits 1 s
    await world.say(MANAGER, f"/webhook {brand_id} test")
    await platform.wait_for(2)
    assert platform.received[0].event["id"] == platform.received[1].event["id"]
    rows = await _settled_deliveries(world)
    assert [(r[2], r[3]) for r in rows] == [("delivered", 2)]


async def test_a_500_shows_in_the_admins_list(world: World, platform: Platform) -> None:
    brand_id = await _brand_id(world)
    await _set_webhook(world, brand_id, platform.url)
    platform.answers = [500] * 1000
    await world.say(MANAGER, f"/webhook {brand_id} test")
    await platform.wait_for(2)
    shown = (await world.say(MANAGER, f"/webhook {brand_id}"))[-1].text
    assert "ping" in shown and "HTTP 500" in shown and "retrying" in shown


async def test_a_restart_mid_delivery_delivers_the_same_event_id(
    world: World, platform: Platform
) -> None:
    brand_id = await _brand_id(world)
    await _set_webhook(world, brand_id, platform.url)
    platform.answers = ["hang"]
    await world.say(MANAGER, f"/webhook {brand_id} test")
    await platform.wait_for(1)
    await world.restart()  # while the POST waits for its answer
    await platform.wait_for(2)
    ids = {r.event["id"] for r in platform.received}
    assert len(ids) == 1
    rows = await _settled_deliveries(world)
    assert len(rows) == 1 and rows[0][0] in ids and rows[0][2] == "delivered"


async def test_a_claim_abandoned_by_a_dead_sender_is_delivered_later_with_its_id(
    world: World, platform: Platform
) -> None:
    brand_id = await _brand_id(world)
    await _set_webhook(world, brand_id, platform.url)
    await world.bot.webhook_sender.stop()  # this process stops sending for a moment
    await world.say(MANAGER, f"/webhook {brand_id} test")
    # Another replica claims it and dies before it POSTs (no release).
    now = utcnow()
    taken = await world.db.webhooks.claim_due(now=now, limit=5, hold=now + timedelta(seconds=1))
    assert len(taken) == 1
    await world.restart()
    await platform.wait_for(1)
    await asyncio.sleep(0.3)
    assert [r.event["id"] for r in platform.received] == [taken[0].event_id]
    rows = await _settled_deliveries(world)
    assert [(r[0], r[2], r[3]) for r in rows] == [(taken[0].event_id, "delivered", 2)]


# --- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # a cloud's metadata service
        ("fe80::1", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("0.0.0.0", False),
        ("100.64.0.1", False),
        ("::ffff:127.0.0.1", False),
        ("fd00::1", False),
    ],
)
def test_which_addresses_a_webhook_may_reach(address: str, allowed: bool) -> None:
    problem = address_problem(ipaddress.ip_address(address), allow_loopback=False)
    assert (problem is None) == allowed


def test_url_policy() -> None:
    assert check_url("https://platform.example/hooks", allow_loopback=False) is None
    assert check_url("http://platform.example/hooks", allow_loopback=False) == (
        UrlProblem.NOT_HTTPS
    )
    assert check_url("https://user:pw@platform.example/", allow_loopback=False) == (
        UrlProblem.CREDENTIALS
    )
    assert check_url("https://10.0.0.5/hooks", allow_loopback=False) == UrlProblem.PRIVATE
    assert check_url("ftp://platform.example/", allow_loopback=False) == UrlProblem.MALFORMED
    assert check_url("https://platform.example:99999/", allow_loopback=False) == (
        UrlProblem.MALFORMED
    )
    assert check_url("http://127.0.0.1:8/x", allow_loopback=True) is None
    assert check_url("http://localhost:8/x", allow_loopback=True) is None
    # The playground's allowance is for this machine: anywhere else is https only.
    assert check_url("http://10.0.0.5/x", allow_loopback=True) == UrlProblem.NOT_HTTPS
    assert check_url("http://platform.example/x", allow_loopback=True) == UrlProblem.NOT_HTTPS
    assert check_url("https://10.0.0.5/x", allow_loopback=True) == UrlProblem.PRIVATE


async def test_private_and_loopback_urls_are_refused(database_url: str) -> None:
    world = await make_world(database_url)  # a real deployment: no loopback allowed
    try:
        brand_id = await _brand_id(world)
        for url, words in (
            ("http://platform.example/hooks", "https://"),
            ("https://127.0.0.1/hooks", "private"),
            ("https://localhost/hooks", "private"),  # refused once resolved
            ("https://169.254.169.254/latest", "private"),
            ("https://[::1]/hooks", "private"),
            ("not a url", "/webhook"),
        ):
            reply = await _set_webhook(world, brand_id, url)
            assert words in reply and "whsec_" not in reply, (url, reply)
        assert await world.rows("SELECT webhook_url FROM brand") == [(None,)]
    finally:
        await close_world(world)


async def test_a_name_that_resolves_to_loopback_at_delivery_is_refused(
    database_url: str, platform: Platform
) -> None:
    """A URL accepted once (its name pointed elsewhere) whose name now resolves to the bot's own
    machine: nothing is POSTed there."""
    world = await make_world(database_url, webhook_first_retry_seconds=0.05)
    try:
        brand_id = await _brand_id(world)
        port = platform.url.split(":")[2].split("/")[0]
        sealed = world.bot.webhook_vault.seal("whsec_test")
        assert sealed is not None
        url = f"https://localhost:{port}/hooks/connect-bot"
        assert await world.db.webhooks.set_webhook(brand_id, url=url, secret_sealed=sealed)
        await world.say(MANAGER, f"/webhook {brand_id} test")
        async with asyncio.timeout(10):
            while True:
                rows = await _deliveries(world)
                if rows and rows[0][5] is not None:
                    break
                await asyncio.sleep(0.05)
        assert rows[0][5] == "private_address"
        assert platform.received == []
        shown = (await world.say(MANAGER, f"/webhook {brand_id}"))[-1].text
        assert "refused" in shown
    finally:
        await close_world(world)


# --- who may, and whose events -----------------------------------------------------------------


async def test_webhook_by_a_non_admin_is_refused(world: World, platform: Platform) -> None:
    brand_id = await _brand_id(world)
    for command in (f"/webhook {brand_id} {platform.url}", f"/webhook {brand_id}"):
        reply = (await world.say(ANNA, command))[-1].text
        assert "only administrators" in reply
    assert await world.rows("SELECT webhook_url FROM brand") == [(None,)]


async def test_other_brands_events_never_reach_this_url(world: World, platform: Platform) -> None:
    token = await world.invite("@anna.bakes")
    first = await _brand_id(world)
    await world.say(MANAGER, "/brand_new Other Brand")
    other = int(str((await world.rows("SELECT max(id) FROM brand"))[0][0]))
    assert other != first
    await _set_webhook(world, other, platform.url)
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await world.say(MANAGER, f"/webhook {other} test")
    await platform.wait_for(1)
    await asyncio.sleep(0.5)
    assert platform.types() == ["ping"]
    assert platform.received[0].event["brand"]["id"] == other
    assert [(r[1], r[6]) for r in await _deliveries(world)] == [("ping", other)]


async def test_off_removes_the_webhook_and_rotate_changes_the_secret(
    world: World, platform: Platform
) -> None:
    brand_id = await _brand_id(world)
    old = _secret(await _set_webhook(world, brand_id, platform.url))
    new = _secret((await world.say(MANAGER, f"/webhook {brand_id} rotate"))[-1].text)
    assert new != old
    await world.say(MANAGER, f"/webhook {brand_id} test")
    await platform.wait_for(1)
    header = platform.received[0].headers["Connect-Bot-Signature"]
    assert verify(new, header, platform.received[0].raw)
    assert not verify(old, header, platform.received[0].raw)
    reply = (await world.say(MANAGER, f"/webhook {brand_id} off"))[-1].text
    assert "removed" in reply
    assert await world.rows("SELECT webhook_url, webhook_secret_sealed FROM brand") == [
        (None, None)
    ]
    reply = (await world.say(MANAGER, f"/webhook {brand_id} test"))[-1].text
    assert "no webhook" in reply


# --- a kept connection's life -----------------------------------------------------------------


async def test_breakage_recovery_and_forgetting_are_reported(
    world: World, platform: Platform
) -> None:
    token = await world.invite("@anna.bakes")
    brand_id = await _brand_id(world)
    await _set_webhook(world, brand_id, platform.url)
    await world.through_checks(ANNA, token)
    await world.facebook_login(ANNA, anna_on_facebook())
    await platform.wait_for(2)

    async def health_round() -> None:
        async with world.db.transaction() as s:
            await s.exec(sa.update(Connection).values(next_check_at=None))
        await world.bot.upkeep.run_round()
        await world.settle()

    world.graph.unpublish_page("fb-anna", "p-100")
    await health_round()
    await platform.wait_for(3)
    world.graph.unpublish_page("fb-anna", "p-100", published=True)
    await health_round()
    await platform.wait_for(4)
    broken, healthy = platform.received[2].event, platform.received[3].event
    assert (broken["type"], broken["reason"], broken["health"]) == (
        "connection.broken",
        "page_unpublished",
        "broken",
    )
    assert (healthy["type"], healthy["reason"]) == ("connection.healthy", None)
    await _settled_deliveries(world)

    world.telegram.send_text(ANNA, "/forget")
    await world.settle()
    world.telegram.press(ANNA, world.telegram.last_message(ANNA.id), "Yes, forget me")
    await world.settle()
    await platform.wait_for(5)
    deleted = platform.received[4].event
    assert (deleted["type"], deleted["reason"]) == ("connection.data_deleted", "forget")
    assert deleted["instagram_id"] is None and deleted["page_id"] is None
    assert deleted["invitation"]["handle"].lstrip("@") == "anna.bakes"
    # What was delivered before quoted the account's ids: gone with the connection.
    rows = await _settled_deliveries(world)
    assert [r[1] for r in rows] == ["connection.data_deleted"]
    dump = " ".join(str(b) for (b,) in await world.rows("SELECT body FROM webhook_delivery"))
    assert "ig-100" not in dump and "p-100" not in dump


def test_signing_secrets_never_reach_a_log_line() -> None:
    from bot.logs import redact
    from bot.webhooks import new_signing_secret

    secret = new_signing_secret()
    assert secret not in redact(f"reply sent: Signing secret: <code>{secret}</code>")
