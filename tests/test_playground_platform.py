"""The playground's "platform" pane (issue 12): the brand's webhooks arrive at the playground's
own receiver, signed, and the pane reads the brand's connections through the bot's read API.
Over HTTP, as the page uses it; the signature is also checked here by hand (hmac, as
docs/webhooks.md describes it), independently of both the bot and the pane."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from playground.platform_side import RECEIVER_PATH, Signature, mask, verify
from tests.test_playground import JsonDict, PageApi, connect, start_playground

SECRET = "whsec_test"


@pytest.fixture
async def page() -> AsyncIterator[PageApi]:
    started = await start_playground()
    try:
        async with httpx.AsyncClient(base_url=started.url, timeout=10) as http:
            yield PageApi(started, http)
    finally:
        await started.stop()


def signed(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


async def platform_view(page: PageApi) -> JsonDict:
    return dict((await page.state())["platform"])


async def events_until(page: PageApi, wanted: Any, seconds: float = 20) -> list[JsonDict]:
    """The pane's events (newest first) once ``wanted(events)`` holds."""
    async with asyncio.timeout(seconds):
        while True:
            events: list[JsonDict] = (await platform_view(page))["events"]
            if wanted(events):
                return events
            await asyncio.sleep(0.2)


def test_the_check_is_the_documented_one() -> None:
    body = b'{"id":"evt_1","type":"ping"}'
    now = int(time.time())
    assert verify(SECRET, signed(SECRET, now, body), body, now=now) == Signature.OK
    # Several v1 values: any may match.
    both = f"{signed('whsec_old', now, body)},v1={signed(SECRET, now, body).split('v1=')[1]}"
    assert verify(SECRET, both, body, now=now) == Signature.OK
    assert verify("whsec_other", signed(SECRET, now, body), body, now=now) == Signature.MISMATCH
    assert verify(SECRET, signed(SECRET, now, body), body + b" ", now=now) == Signature.MISMATCH
    assert verify(SECRET, signed(SECRET, now - 301, body), body, now=now) == Signature.STALE
    assert verify(SECRET, None, body, now=now) == Signature.MISSING
    assert verify(SECRET, "t=abc,v1=00", body, now=now) == Signature.MISSING


def test_page_tokens_are_masked_wherever_they_are() -> None:
    answer = {"data": [{"page_access_token": "EAAGsecret1234", "handle": "a"}], "x": None}
    assert mask(answer) == {"data": [{"page_access_token": "…1234", "handle": "a"}], "x": None}
    assert mask({"page_access_token": None}) == {"page_access_token": None}


async def test_the_platform_is_attached_once_the_brand_exists(page: PageApi) -> None:
    # No brand before Maria's first /invite (it makes one): the pane waits, nothing is made early.
    view = await platform_view(page)
    assert view["attached"] is False and view["problem"] is None
    assert await page.playground.bot.db.brands.brands() == []
    waiting = (await page.http.get("api/platform/connections")).json()
    assert waiting["status"] == 0 and "/invite" in waiting["body"]["error"]
    await page.invite("anna.bakes")
    view = await platform_view(page)
    assert view["attached"] is True and view["problem"] is None
    assert view["webhook_url"] == f"{page.playground.url.rstrip('/')}{RECEIVER_PATH}"
    assert view["key_prefix"].startswith("cbk_")
    # The secret and the key stay with the playground: not in what the page gets.
    attachment = page.playground.platform.attachment
    assert attachment is not None
    shown = json.dumps(await page.state())
    assert attachment.secret not in shown and attachment.api_key not in shown
    assert attachment.secret not in repr(attachment) and attachment.api_key not in repr(attachment)
    # The bot holds the same webhook for Maria's brand.
    brand = await page.playground.bot.console.brand(attachment.brand_id)
    assert brand is not None and brand.webhook_url == view["webhook_url"]


async def test_a_connect_reaches_the_platform_signed(page: PageApi) -> None:
    anna = page.playground.cast.influencers[0]
    await connect(page, anna, "anna.bakes")
    events = await events_until(
        page, lambda es: any(e["type"] == "connection.connected" for e in es)
    )
    types = [e["type"] for e in reversed(events)]
    assert types.index("invitation.opened") < types.index("connection.connected")
    connected = next(e for e in events if e["type"] == "connection.connected")
    assert connected["handle"] == "anna.bakes"
    assert connected["id"].startswith("evt_")
    assert connected["signature_ok"] is True and connected["answered"] == 200
    assert all(e["signature_ok"] for e in events)

    # The API, called through the pane: the list, then one connection with its token masked.
    listed = (await page.http.get("api/platform/connections")).json()
    assert listed["request"] == "GET /api/v1/connections" and listed["status"] == 200
    (row,) = listed["body"]["data"]
    assert row["handle"] == "anna.bakes" and row["connection_status"] == "active"
    read = (await page.http.get(f"api/platform/connections/{row['invitation_id']}")).json()
    assert read["status"] == 200 and read["body"]["username"] == "anna.bakes"
    masked = read["body"]["page_access_token"]
    assert masked.startswith("…") and len(masked) == 5
    # The real token, as the platform itself gets it with the key: only its tail was shown.
    attachment = page.playground.platform.attachment
    assert attachment is not None
    async with httpx.AsyncClient(base_url=attachment.api_url, timeout=10) as http:
        direct = await http.get(
            f"/api/v1/connections/{row['invitation_id']}",
            headers={"Authorization": f"Bearer {attachment.api_key}"},
        )
    token = direct.json()["page_access_token"]
    assert token.endswith(masked[1:]) and token not in json.dumps(read)
    unknown = (await page.http.get("api/platform/connections/999999")).json()
    assert unknown["status"] == 404 and unknown["body"]["error"]["code"] == "not_found"


async def test_answer_500_shows_the_retry(page: PageApi) -> None:
    await page.invite("anna.bakes")
    assert (await page.http.post("api/platform/answer", json={"fail": True})).status_code == 200
    assert (await platform_view(page))["failing"] is True
    attachment = page.playground.platform.attachment
    assert attachment is not None
    brand = await page.playground.bot.console.brand(attachment.brand_id)
    assert brand is not None
    event_id = await page.playground.bot.brand_webhooks.ping(brand)
    failed = await events_until(page, lambda es: any(e["id"] == event_id for e in es))
    assert failed[0]["answered"] == 500 and failed[0]["again"] is False
    await page.http.post("api/platform/answer", json={"fail": False})
    events = await events_until(
        page, lambda es: any(e["id"] == event_id and e["answered"] == 200 for e in es)
    )
    assert events[0]["id"] == event_id and events[0]["again"] is True
    assert events[0]["signature_ok"] is True


async def test_the_receiver_refuses_what_is_not_a_signed_event(page: PageApi) -> None:
    await page.invite("anna.bakes")
    answer = await page.http.post(RECEIVER_PATH.lstrip("/"), content=b"not json")
    assert answer.status_code == 400 and answer.json() == {"error": "not a webhook event"}
    body = json.dumps({"id": "evt_forged", "type": "connection.connected"}).encode()
    forged = signed("whsec_guess", int(time.time()), body)
    answer = await page.http.post(
        RECEIVER_PATH.lstrip("/"), content=body, headers={"Connect-Bot-Signature": forged}
    )
    assert answer.status_code == 200
    newest = (await platform_view(page))["events"][0]
    assert newest["id"] == "evt_forged" and newest["signature"] == "mismatch"
    assert newest["signature_ok"] is False
    bad = await page.http.post("api/platform/answer", json={"fail": "yes"})
    assert bad.status_code == 400 and "fail" in bad.json()["error"]


async def test_the_pane_follows_a_new_webhook_secret(page: PageApi) -> None:
    """An admin sets the brand's webhook again (`/webhook <brand> <url>`: a new secret). The
    pane's first ✗ makes it read the brand's current secret, check that event again, and say so;
    later events are ✓."""
    await page.invite("anna.bakes")
    bot = page.playground.bot
    attachment = page.playground.platform.attachment
    assert attachment is not None
    brand = await bot.console.brand(attachment.brand_id)
    assert brand is not None
    changed = await bot.brand_webhooks.set_url(brand, attachment.webhook_url)
    assert changed.secret is not None and changed.secret != attachment.secret
    for _ in range(2):
        event_id = await bot.brand_webhooks.ping(brand)
        events = await events_until(
            page, lambda es, e=event_id: any(x["id"] == e and x["signature_ok"] for x in es)
        )
    first, second = events[1], events[0]
    assert first["rechecked"] is True and second["rechecked"] is False
    followed = page.playground.platform.attachment
    assert followed is not None and followed.secret == changed.secret
    view = await platform_view(page)
    assert "signing secret changed" in view["webhook_note"]
    assert changed.secret not in json.dumps(await page.state())


async def test_the_pane_makes_a_new_key_when_its_key_is_revoked(page: PageApi) -> None:
    await page.invite("anna.bakes")
    bot = page.playground.bot
    attachment = page.playground.platform.attachment
    assert attachment is not None
    assert (await bot.console.revoke_api_key(attachment.key_prefix))[0][2] is True
    listed = (await page.http.get("api/platform/connections")).json()
    assert listed["status"] == 200, listed
    view = await platform_view(page)
    assert view["key_prefix"] != attachment.key_prefix
    assert attachment.key_prefix in view["key_note"] and view["key_prefix"] in view["key_note"]
    renewed = page.playground.platform.attachment
    assert renewed is not None and renewed.api_key not in json.dumps(await page.state())
    # The new key goes on working: no second key is made.
    again = (await page.http.get("api/platform/connections")).json()
    assert again["status"] == 200
    assert (await platform_view(page))["key_prefix"] == view["key_prefix"]
