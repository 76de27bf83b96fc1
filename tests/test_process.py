"""The run command as a person uses it: `python -m bot` as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from sandbox.facebook import GraphStandin
from sandbox.telegram import TelegramStandin
from tests.world import MANAGER

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _run(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.fixture
async def standins() -> AsyncIterator[tuple[TelegramStandin, GraphStandin]]:
    telegram, graph = TelegramStandin(), GraphStandin()
    await telegram.start()
    await graph.start()
    yield telegram, graph
    await telegram.stop()
    await graph.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_runs_serves_and_stops_cleanly(
    standins: tuple[TelegramStandin, GraphStandin], tmp_path: Path, sig: signal.Signals
) -> None:
    telegram, graph = standins
    port = _free_port()
    proc = await _run(
        {
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_BASE_URL": telegram.base_url,
            "FACEBOOK_APP_ID": graph.app_id,
            "FACEBOOK_APP_SECRET": graph.app_secret,
            "FACEBOOK_GRAPH_URL": graph.base_url,
            "FACEBOOK_DIALOG_URL": graph.base_url,
            "HTTP_PORT": str(port),
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "ADMIN_TELEGRAM_IDS": str(MANAGER.id),
            "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        },
        tmp_path,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not any("ready:" in line for line in lines):
                raw = await proc.stderr.readline()
                assert raw, "".join(lines)
                lines.append(raw.decode())
        telegram.send_text(MANAGER, "/invite @anna.bakes")
        reply = await telegram.wait_for(MANAGER.id, "Invitation for @anna.bakes", timeout=15)
        assert "t.me/connect_test_bot?start=" in reply.text
        assert (tmp_path / "data" / "connect-bot.sqlite3").exists()
    finally:
        proc.send_signal(sig)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    log = "".join(lines) + err.decode()
    assert proc.returncode == 0, log
    assert "shutting down" in log and "Traceback" not in log
    assert telegram.token not in log and graph.app_secret not in log


@pytest.mark.parametrize(
    ("env", "names"),
    [
        # Nothing at all configured starts the playground (tests/test_playground.py); a Meta app
        # without a bot token is a deployment being set up.
        ({"FACEBOOK_APP_ID": "1"}, "TELEGRAM_BOT_TOKEN"),
        ({"TELEGRAM_BOT_TOKEN": "nonsense"}, "TELEGRAM_BOT_TOKEN"),
        ({"TELEGRAM_BOT_TOKEN": "1:abc"}, "FACEBOOK_APP_ID"),
        ({"TELEGRAM_BOT_TOKEN": "1:abc", "FACEBOOK_APP_ID": "1"}, "FACEBOOK_APP_SECRET"),
        # Real credentials without a key: no connection could be kept alive.
        (
            {"TELEGRAM_BOT_TOKEN": "1:abc", "FACEBOOK_APP_ID": "1", "FACEBOOK_APP_SECRET": "s"},
            "TOKEN_ENCRYPTION_KEYS",
        ),
        (
            {
                "TELEGRAM_BOT_TOKEN": "1:abc",
                "FACEBOOK_APP_ID": "1",
                "FACEBOOK_APP_SECRET": "s",
                "TOKEN_ENCRYPTION_KEYS": "not-a-key",
            },
            "TOKEN_ENCRYPTION_KEYS",
        ),
        ({"HTTP_PORT": "eighty"}, "HTTP_PORT"),
        ({"ADMIN_TELEGRAM_IDS": "12,maria"}, "ADMIN_TELEGRAM_IDS"),
        ({"DEFAULT_LANGUAGE": "fr"}, "DEFAULT_LANGUAGE"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ],
)
async def test_bad_settings_stop_with_one_line(
    tmp_path: Path, env: dict[str, str], names: str
) -> None:
    proc = await _run(env, tmp_path)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    message = err.decode().strip()
    assert proc.returncode != 0
    assert len(message.splitlines()) == 1, message
    assert names in message and "Traceback" not in message


def test_verify_only_needs_no_key_and_keeps_no_tokens() -> None:
    from bot.config import load_settings

    real = {"telegram_bot_token": "1:abc", "facebook_app_id": "1", "facebook_app_secret": "s"}
    verify_only = load_settings(_env_file=None, **real, verify_only=True)
    verify_only.require_real_credentials()  # starts
    assert not verify_only.keeps_tokens
    # A key with VERIFY_ONLY still keeps nothing: the operator chose so.
    key = Fernet.generate_key().decode()
    keyed = load_settings(_env_file=None, **real, verify_only=True, token_encryption_keys=key)
    assert not keyed.keeps_tokens
    kept = load_settings(_env_file=None, **real, token_encryption_keys=key)
    kept.require_real_credentials()
    assert kept.keeps_tokens
