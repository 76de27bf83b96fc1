"""Webhook mode, end to end on SQLite and PostgreSQL: the Telegram stand-in POSTs updates to the
bot's /telegram/webhook route with the secret header, the way Telegram does; forged, repeated and
malformed deliveries change nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from bot.config import ConfigError, load_settings
from tests.db_snapshot import snapshot
from tests.world import (
    ANNA,
    MANAGER,
    World,
    _start_bot,
    anna_on_facebook,
    close_world,
    make_world,
)
from web_callback.app import MAX_UPDATE_BYTES, SECRET_HEADER, WEBHOOK_PATH


@pytest.fixture
async def hook_world(database_url: str) -> AsyncIterator[World]:
    w = await make_world(database_url, webhook=True)
    try:
        yield w
    finally:
        await close_world(w)


def _route(world: World) -> str:
    return f"http://127.0.0.1:{world.bot.http_port}{WEBHOOK_PATH}"


def _secret(world: World) -> str:
    secret = world.settings.telegram_webhook_secret
    assert secret is not None
    return secret.get_secret_value()


def _help_from_anna(update_id: int) -> dict[str, object]:
    """A real-shaped update: Anna sends /help."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": ANNA.id, "type": "private", "first_name": ANNA.first_name},
            "from": ANNA.to_json(),
            "text": "/help",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    }


async def _count(world: World, table: str) -> int:
    async with world.db.engine.connect() as conn:
        return int((await conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}"))).scalar_one())


async def test_full_connection_in_webhook_mode(hook_world: World) -> None:
    world = hook_world
    token = await world.invite("@anna.bakes")
    login = await world.through_checks(ANNA, token)
    assert "Step 3 of 3" in login.text
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert page.status_code == 200 and "Connected" in page.text

    told = await world.telegram.wait_for(ANNA.id, "Connected!")
    assert "12,345 followers" in told.text
    await world.telegram.wait_for(MANAGER.id, "is connected")

    # Registered once with the secret and the update types the bot handles; never polled.
    [registered] = world.telegram.calls("setWebhook")
    assert registered["url"] == world.settings.telegram_webhook_url
    assert registered["secret_token"] == _secret(world)
    assert registered["allowed_updates"] == ["message", "callback_query"]
    assert 1 <= registered["max_connections"] <= 100
    assert world.telegram.calls("getUpdates") == []
    deliveries = world.telegram.webhook_deliveries
    assert deliveries and all(d.status == 200 for d in deliveries)
    # Every delivered update was claimed exactly once.
    assert await _count(world, "telegram_update") == len({d.update_id for d in deliveries})


async def test_wrong_or_missing_secret_is_refused_and_changes_nothing(hook_world: World) -> None:
    world = hook_world
    world.telegram.send_text(ANNA, "hello")  # Anna has started the bot: it may answer her
    await world.settle()
    before = await snapshot(world.db)
    sent_before = len(world.telegram.requests)
    seen_before = len(world.telegram.messages(ANNA.id))
    body = json.dumps(_help_from_anna(900_000_001))
    secret = _secret(world)
    wrong: list[dict[str, str | bytes]] = [
        {},
        {SECRET_HEADER: ""},
        {SECRET_HEADER: secret[:-1]},
        {SECRET_HEADER: secret + "x"},
        {SECRET_HEADER: secret.upper() if secret.upper() != secret else secret.lower()},
        {SECRET_HEADER: ("Ü" + secret).encode()},  # raw non-ASCII bytes
        {"X-Telegram-Bot-Api-Secret": secret},  # a near-miss header name
    ]
    async with httpx.AsyncClient() as http:
        for headers in wrong:
            answer = await http.post(
                _route(world),
                content=body.encode(),
                headers={"Content-Type": "application/json", **headers},
            )
            assert answer.status_code == 403, headers
            assert secret not in answer.text and "help" not in answer.text
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
        await asyncio.sleep(0.3)
        assert await snapshot(world.db) == before
        assert len(world.telegram.requests) == sent_before  # the bot said nothing to anyone
        assert len(world.telegram.messages(ANNA.id)) == seen_before

        # The very same body with the right secret is processed: the refusals were the secret.
        answer = await http.post(
            _route(world), content=body.encode(), headers={SECRET_HEADER: secret}
        )
        assert answer.status_code == 200
    await world.telegram.wait_for(ANNA.id, "/language")


@pytest.mark.parametrize("concurrently", [False, True], ids=["after-ack", "concurrent"])
async def test_duplicate_delivery_is_processed_once(hook_world: World, concurrently: bool) -> None:
    world = hook_world
    await world.settle()
    replies_before = len(world.telegram.messages(MANAGER.id))
    world.telegram.deliver_twice(1, concurrently=concurrently)
    world.telegram.send_text(MANAGER, "/invite @twice.delivered")
    await world.telegram.wait_for(MANAGER.id, "t.me/")
    await world.settle()
    await asyncio.sleep(0.3)  # a second processing would have sent its reply by now

    update_id = world.telegram.webhook_deliveries[-1].update_id
    posts = [d for d in world.telegram.webhook_deliveries if d.update_id == update_id]
    assert [d.status for d in posts] == [200, 200] and any(d.duplicate for d in posts)
    # What the manager sees: exactly one answer, one invitation.
    assert len(world.telegram.messages(MANAGER.id)) == replies_before + 1
    assert await _count(world, "invitation") == 1


MALFORMED: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not json", b"update_id=1"),
    ("truncated", b'{"update_id": 1, "message": {'),
    ("bad utf-8", b'{"update_id": 1, "x": "\xff\xfe"}'),
    ("array", b"[1, 2]"),
    ("null", b"null"),
    ("string", b'"update"'),
    ("no update_id", b"{}"),
    ("string id", b'{"update_id": "1"}'),
    ("bool id", b'{"update_id": true}'),
    ("float id", b'{"update_id": 1.5}'),
    ("negative id", b'{"update_id": -1}'),
    ("huge id", b'{"update_id": 18446744073709551616}'),
    ("message not an object", b'{"update_id": 5, "message": "hello"}'),
    ("message without ids", b'{"update_id": 6, "message": {"text": "/help"}}'),
    ("callback not an object", b'{"update_id": 7, "callback_query": 5}'),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000),
]


async def test_malformed_bodies_get_4xx_and_change_nothing(hook_world: World) -> None:
    world = hook_world
    await world.settle()
    before = await snapshot(world.db)
    headers = {SECRET_HEADER: _secret(world), "Content-Type": "application/json"}
    async with httpx.AsyncClient() as http:
        for name, body in MALFORMED:
            answer = await http.post(_route(world), content=body, headers=headers)
            assert answer.status_code == 400, name
            assert answer.headers["Referrer-Policy"] == "no-referrer"
        too_big = b'{"update_id": 8, "pad": "' + b"x" * MAX_UPDATE_BYTES + b'"}'
        answer = await http.post(_route(world), content=too_big, headers=headers)
        assert answer.status_code == 413
        answer = await http.get(_route(world), headers=headers)
        assert answer.status_code == 405 and answer.headers["X-Frame-Options"] == "DENY"
    await asyncio.sleep(0.2)
    assert await snapshot(world.db) == before


async def test_stop_keeps_the_webhook_and_updates_wait_for_the_restart(hook_world: World) -> None:
    world = hook_world
    await world.bot.stop()
    # Another replica may still be serving: nothing is deleted at Telegram.
    assert world.telegram.calls("deleteWebhook") == []
    world.telegram.send_text(MANAGER, "/help")
    await asyncio.sleep(0.5)
    failed = [d for d in world.telegram.webhook_deliveries if d.status is None]
    assert failed, "the stand-in should have tried (and failed) to deliver meanwhile"

    # A fresh process on the same settings (the old one is already stopped).
    world.bot = await _start_bot(world.settings, world.handled)
    help_text = await world.telegram.wait_for(MANAGER.id, "/invite")
    await world.settle()
    assert [m.message_id for m in world.telegram.messages(MANAGER.id)] == [help_text.message_id]
    assert world.telegram.calls("getUpdates") == []


def test_webhook_settings_are_validated_at_start_up() -> None:
    base = {"_env_file": None}
    with pytest.raises(ConfigError, match="^TELEGRAM_WEBHOOK_SECRET .*required"):
        load_settings(**base, telegram_webhook_url="https://bot.example/telegram/webhook")
    with pytest.raises(ConfigError, match="^TELEGRAM_WEBHOOK_SECRET .*A-Z"):
        load_settings(
            **base,
            telegram_webhook_url="https://bot.example/telegram/webhook",
            telegram_webhook_secret="has space",
        )
    with pytest.raises(ConfigError, match="^TELEGRAM_WEBHOOK_SECRET"):
        load_settings(**base, telegram_webhook_secret="x" * 257)
    with pytest.raises(ConfigError, match="^TELEGRAM_WEBHOOK_URL .*https"):
        load_settings(
            **base,
            telegram_webhook_url="http://bot.example/telegram/webhook",
            telegram_webhook_secret="s3cret",
        )
    polling = load_settings(**base)
    assert polling.telegram_webhook_url == "" and polling.telegram_webhook_secret is None
    hooked = load_settings(
        **base,
        telegram_webhook_url="https://bot.example/telegram/webhook",
        telegram_webhook_secret="A-z_0" * 50,
    )
    assert hooked.telegram_webhook_secret is not None
    # The secret never shows in a repr.
    assert "A-z_0" not in repr(hooked)
