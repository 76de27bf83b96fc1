"""Messages caused by events survive Telegram's trouble and our own crashes: delivered once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.models import OutboxKind
from bot.models import OutboxMessage as Row
from bot.notify import plan
from sandbox.facebook import Consent
from tests.world import ANNA, BEN, MANAGER, World, anna_on_facebook

ROOT = Path(__file__).resolve().parent.parent


async def _outbox(world: World) -> list[tuple[object, ...]]:
    async with world.db.engine.connect() as conn:
        rows = await conn.execute(sa.text("SELECT chat_id, status FROM outbox ORDER BY id"))
        return [tuple(r) for r in rows.all()]


def _count(world: World, chat_id: int, text: str) -> int:
    return sum(text.lower() in m.text.lower() for m in world.telegram.messages(chat_id))


@pytest.mark.parametrize(
    ("status", "description", "retry_after"),
    [
        (500, "Internal Server Error", None),
        (502, "Bad Gateway", None),
        (429, "Too Many Requests: retry after 1", 1),
    ],
)
async def test_results_arrive_once_telegram_recovers(
    world: World, status: int, description: str, retry_after: int | None
) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    world.telegram.fail_next(
        "sendMessage", status=status, description=description, retry_after=retry_after, count=3
    )
    page = await world.facebook_login(ANNA, anna_on_facebook())
    assert page.status_code == 200  # the browser is answered at once, whatever Telegram does

    await world.telegram.wait_for(ANNA.id, "Connected!", timeout=15)
    await world.telegram.wait_for(MANAGER.id, "is connected", timeout=15)
    # The login message's buttons come off after "Connected!" (one message per chat a second).
    for _ in range(100):
        if "pending" not in {s for _, s in await _outbox(world)}:
            break
        await asyncio.sleep(0.1)
    assert _count(world, ANNA.id, "Connected!") == 1
    assert _count(world, MANAGER.id, "is connected") == 1
    assert {s for _, s in await _outbox(world)} <= {"sent", "superseded"}


async def test_blocked_influencer_means_the_manager_is_told(world: World) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    world.telegram.block(ANNA.id)
    await world.facebook_login(ANNA, anna_on_facebook(), Consent(cancel=True))
    news = await world.telegram.wait_for(MANAGER.id, "cannot reach @anna.bakes")
    assert "contact them directly" in news.text
    # Nothing more goes to Anna's chat (the login button's removal included), and the managers
    # are told once.
    await asyncio.sleep(3)
    await world.settle()
    statuses = {status for chat, status in await _outbox(world) if chat == ANNA.id}
    assert statuses == {"unreachable"}, statuses
    assert _count(world, MANAGER.id, "cannot reach @anna.bakes") == 1


async def test_notices_to_one_manager_are_combined(world: World) -> None:
    """Results arriving together reach the manager as one message, not one per second."""
    tokens = [await world.invite("anna.bakes"), await world.invite("ben.cooks")]
    await world.through_checks(ANNA, tokens[0])
    await world.through_checks(BEN, tokens[1])
    world.telegram.fail_next(
        "sendMessage", status=500, description="Internal Server Error", count=1
    )
    world.graph.set_person(anna_on_facebook(), Consent(cancel=True))
    first = (await world.browser.get(world.login_url(ANNA))).headers["location"]
    second = (await world.browser.get(world.login_url(BEN))).headers["location"]
    await asyncio.gather(world.browser.get(first), world.browser.get(second))
    await world.telegram.wait_for(MANAGER.id, "tried to connect", timeout=15)
    await asyncio.sleep(1.5)
    news = [m.text for m in world.telegram.messages(MANAGER.id) if "tried to connect" in m.text]
    assert len(news) == 1
    assert "@anna.bakes" in news[0] and "@ben.cooks" in news[0]


def test_plan_combines_notices_and_keeps_the_newest_edit() -> None:
    def row(i: int, chat: int, kind: OutboxKind, text: str, edit: int | None = None) -> Row:
        return Row(id=i, chat_id=chat, kind=kind, text=text, edit_message_id=edit)

    rows = [
        row(1, 10, OutboxKind.NOTICE, "a"),
        row(2, 20, OutboxKind.SEND, "x"),
        row(3, 10, OutboxKind.NOTICE, "b"),
        row(4, 20, OutboxKind.SEND, "y"),
        row(5, 30, OutboxKind.EDIT, "v1", edit=7),
        row(6, 30, OutboxKind.EDIT, "v2", edit=7),
        row(7, 10, OutboxKind.NOTICE, "n" * 4095),
    ]
    deliveries, superseded = plan(rows)
    assert superseded == [5]
    by_chat = {d.chat_id: d for d in deliveries}
    assert by_chat[10].text == "a\n\nb" and by_chat[10].ids == [1, 3]
    assert by_chat[20].ids == [2]  # one message per chat per round
    assert by_chat[30].text == "v2" and by_chat[30].ids == [6]


def test_plan_sends_news_before_card_edits() -> None:
    rows = [
        Row(id=1, chat_id=10, kind=OutboxKind.EDIT_CAPTION, text="card", edit_message_id=3),
        Row(id=2, chat_id=10, kind=OutboxKind.NOTICE, text="connected"),
    ]
    [delivery], _ = plan(rows)
    assert delivery.ids == [2]


# --- a real process, killed between the event and the delivery ---------------------------------


async def _spawn(world: World, tmp_path: Path) -> asyncio.subprocess.Process:
    s = world.settings
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "PTB_TIMEDELTA": "true",
        "TELEGRAM_BOT_TOKEN": world.telegram.token,
        "TELEGRAM_BASE_URL": world.telegram.base_url,
        "FACEBOOK_APP_ID": world.graph.app_id,
        "FACEBOOK_APP_SECRET": world.graph.app_secret,
        "FACEBOOK_GRAPH_URL": world.graph.base_url,
        "FACEBOOK_DIALOG_URL": world.graph.base_url,
        "PUBLIC_URL": s.public_url,
        "HTTP_PORT": str(s.http_port),
        "DATABASE_URL": s.database_url,
        "ADMIN_TELEGRAM_IDS": str(MANAGER.id),
        "PLATFORM_NAME": s.platform_name,
        "TOKEN_ENCRYPTION_KEYS": (
            s.token_encryption_keys.get_secret_value() if s.token_encryption_keys else ""
        ),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(30):
            while b"ready:" not in await proc.stderr.readline():
                pass
    except BaseException:
        proc.kill()  # never leave a bot running behind a failed test
        await proc.wait()
        raise
    return proc


async def test_killed_between_event_and_delivery(world: World, tmp_path: Path) -> None:
    token = await world.invite("anna.bakes")
    await world.through_checks(ANNA, token)
    await world.bot.stop()  # the in-test bot steps aside; a real process takes over

    proc = await _spawn(world, tmp_path)
    try:
        # Telegram is down for sends: the verdict commits, its messages cannot leave.
        world.telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10_000)
        world.graph.set_person(anna_on_facebook())
        dialog = await world.browser.get(world.login_url(ANNA))
        page = await world.browser.get(dialog.headers["location"])
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    proc.send_signal(signal.SIGKILL)  # killed after the commit, before any delivery
    await proc.wait()
    assert page.status_code == 200 and "Connected" in page.text
    async with world.db.engine.connect() as conn:
        sends = await conn.execute(
            sa.text("SELECT DISTINCT status FROM outbox WHERE kind IN ('send', 'notice')")
        )
        assert [tuple(r) for r in sends.all()] == [("pending",)]

    world.telegram.clear_faults()  # Telegram is back
    proc = await _spawn(world, tmp_path)
    try:
        await world.telegram.wait_for(ANNA.id, "Connected!", timeout=20)
        await world.telegram.wait_for(MANAGER.id, "is connected", timeout=20)
        await asyncio.sleep(1.5)
        assert _count(world, ANNA.id, "Connected!") == 1
        assert _count(world, MANAGER.id, "is connected") == 1
        assert {s for _, s in await _outbox(world)} <= {"sent", "superseded"}
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
        # The checks above reopened the stopped bot's engine; close_world stops it once more.
        await world.db.dispose()
