"""What every benchmark needs: scratch databases, the stand-ins, the bot as a real process, and
simulated people who go through the guided flow.

The bot (or the floor bot) always runs as its own process (``python -m bot``), so its CPU time and
memory are its own and the stand-ins and the simulated people, which live in this process, do not
slow it down; on a 2-core machine each side gets a core.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import math
import os
import re
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast
from urllib.parse import parse_qs, parse_qsl, urlsplit

from cryptography.fernet import Fernet

from sandbox.facebook import Consent, FbPage, FbUser, GraphStandin, IgAccount
from sandbox.telegram import SentMessage, TelegramStandin, TgUser

ROOT = Path(__file__).resolve().parent.parent
MANAGER = TgUser(id=5001, first_name="Maria", username="maria_brand", language_code="en")
ENGINES = ("sqlite", "postgresql")

PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("TEST_PG_DATABASE", "test")

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


# --- databases ---------------------------------------------------------------------------------


def postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


@contextlib.asynccontextmanager
async def scratch_database(engine: str) -> AsyncIterator[str]:
    """A fresh, empty database for one run, removed afterwards: a SQLite file in a temporary
    folder, or a database of its own on the PostgreSQL server (the tests' server and settings)."""
    if engine == "sqlite":
        with tempfile.TemporaryDirectory(prefix="connect-bench-") as folder:
            yield f"sqlite+aiosqlite:///{folder}/bench.sqlite3"
        return
    import asyncpg

    name = f"connectbench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB
        )
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# --- the stand-ins -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def standins() -> AsyncIterator[tuple[TelegramStandin, GraphStandin]]:
    telegram, graph = TelegramStandin(), GraphStandin()
    await telegram.start()
    await graph.start()
    try:
        yield telegram, graph
    finally:
        await telegram.stop()
        await graph.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(
    telegram: TelegramStandin, graph: GraphStandin, database_url: str, port: int
) -> dict[str, str]:
    """The settings a deployment would put in its environment, pointed at the stand-ins."""
    return {
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_BASE_URL": telegram.base_url,
        "FACEBOOK_APP_ID": graph.app_id,
        "FACEBOOK_APP_SECRET": graph.app_secret,
        "FACEBOOK_GRAPH_URL": graph.base_url,
        "FACEBOOK_DIALOG_URL": graph.base_url,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ADMIN_TELEGRAM_IDS": str(MANAGER.id),
        "DATABASE_URL": database_url,
        "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "PLATFORM_NAME": "Brandly",
        "LOG_LEVEL": "INFO",
    }


# --- the bot as a process ----------------------------------------------------------------------


@dataclass
class BotProcess:
    """``python -m <module>`` with ``env`` (and nothing of this process's environment but PATH),
    in an empty working folder so no developer's .env is read."""

    module: str
    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    ready_after: float = 0.0  # seconds from spawning to the "ready:" log line
    log: list[str] = field(default_factory=list)
    _drain: asyncio.Task[None] | None = None
    _folder: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, *, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        self._folder = tempfile.TemporaryDirectory(prefix="connect-bench-cwd-")
        # BENCH_PYTHONPATH: folders searched before the project, to try a change without
        # editing the product (e.g. a module that patches it and then runs bot.__main__).
        path = os.pathsep.join(p for p in (os.environ.get("BENCH_PYTHONPATH"), str(ROOT)) if p)
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": path, **self.env}
        self.started_at = time.perf_counter()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            cwd=self._folder.name,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.process.stderr is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await self.process.stderr.readline()
                    if not raw:
                        raise RuntimeError(f"{self.module} ended before ready:\n{self.tail()}")
                    line = raw.decode(errors="replace")
                    self.log.append(line)
                    if "ready:" in line:
                        self.ready_after = time.perf_counter() - self.started_at
                        break
        except TimeoutError:
            raise RuntimeError(
                f"{self.module} not ready after {timeout}s:\n{self.tail()}"
            ) from None
        # Keep reading the log, or a full pipe would stall the bot.
        self._drain = asyncio.create_task(self._read_log())

    async def _read_log(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        while raw := await self.process.stderr.readline():
            self.log.append(raw.decode(errors="replace"))
            if len(self.log) > 2000:
                del self.log[:1000]

    def tail(self, lines: int = 30) -> str:
        return "".join(self.log[-lines:])

    def problems(self) -> list[str]:
        """Log lines that mean something went wrong in the bot."""
        return [line for line in self.log if "Traceback" in line or " ERROR " in line]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the bot process so far (/proc/<pid>/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # After the command name: state is field 3, utime field 14, stime field 15.
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def memory_mb(self) -> tuple[float, float]:
        """(resident now, resident peak) in MiB, from /proc/<pid>/status."""
        values: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024
        return values["VmRSS"], values["VmHWM"]

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drain, 5)
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


PRODUCT = os.environ.get("BENCH_PRODUCT", "bot")  # the module run as the product


@contextlib.asynccontextmanager
async def running(module: str, env: dict[str, str]) -> AsyncIterator[BotProcess]:
    bot = BotProcess(module, env)
    try:
        await bot.start()
        yield bot
    except BaseException:
        print(f"--- last lines of the {module} log:\n{bot.tail()}", file=sys.stderr)
        raise
    finally:
        await bot.stop()


# --- simulated people --------------------------------------------------------------------------


def influencer(i: int) -> TgUser:
    return TgUser(id=700_000 + i, first_name=f"Inf{i}", username=f"inf{i}", language_code="en")


def handle_of(i: int) -> str:
    # Fixed width: no handle is a prefix of another, so counting mentions is exact.
    return f"bench_u{i:05d}"


def on_facebook(i: int) -> FbUser:
    """Influencer ``i`` with a published Page linked to the invited account: a connection."""
    account = IgAccount(id=f"ig-{i}", username=handle_of(i), followers_count=1000 + i)
    page = FbPage(id=f"p-{i}", name=f"Page {i}", instagram=account)
    return FbUser(id=f"fb-{i}", name=f"Inf {i}", pages=[page])


class Stuck(Exception):
    """A simulated person waited in vain: the bot did not answer as it should."""


class Watch:
    """Waits for conditions on what the stand-in recorded, with one polling task for everybody
    (cheap and identical for the product and the floor, unlike a waiter per person)."""

    def __init__(self, interval: float = 0.002) -> None:
        self._interval = interval
        self._waiting: list[tuple[Callable[[], object | None], asyncio.Future[object]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def until(self, check: Callable[[], T | None], timeout: float = 60.0) -> T:  # noqa: ASYNC109
        found = check()
        if found is not None:
            return found
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiting.append((check, future))
        return cast(T, await asyncio.wait_for(future, timeout))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            still = []
            for check, future in self._waiting:
                if future.done():
                    continue
                found = check()
                if found is None:
                    still.append((check, future))
                else:
                    future.set_result(found)
            self._waiting = still


def _question_after(telegram: TelegramStandin, chat_id: int, after: int) -> SentMessage | None:
    for message in reversed(telegram.messages(chat_id)):
        if message.message_id <= after:
            return None
        if any("yes" in str(b.get("text", "")).lower() for row in message.buttons for b in row):
            return message
    return None


def _login_url(telegram: TelegramStandin, chat_id: int) -> str | None:
    for message in reversed(telegram.messages(chat_id)):
        for row in message.buttons:
            for button in row:
                url = button.get("url")
                # The product's button opens its /oauth/start; the floor's goes to the dialog.
                if isinstance(url, str) and ("/oauth/start?" in url or "/dialog/oauth?" in url):
                    return url
    return None


async def open_logins(logins: dict[int, str]) -> tuple[dict[int, str], str]:
    """What one browser does with the login buttons: the bot's /oauth/start binds each login to
    the browser's cookie and sends it on to Facebook's dialog. Returns the dialog URLs and the
    cookie header the browser sends back with the redirects."""
    import httpx

    dialogs: dict[int, str] = {}
    async with httpx.AsyncClient(timeout=30) as tab:
        for i, url in logins.items():
            start = await tab.get(url)
            assert start.status_code == 302, start.text
            dialogs[i] = str(start.headers["location"])
        cookie = "; ".join(f"{c.name}={c.value}" for c in tab.cookies.jar)
    return dialogs, cookie


async def guide(telegram: TelegramStandin, watch: Watch, user: TgUser, token: str) -> str:
    """One influencer from ``/start <token>`` to the login button (3 updates: the command and
    two "Yes" presses); returns the login URL."""
    telegram.send_text(user, f"/start {token}")
    last = 0
    try:
        for _ in range(2):
            question = await watch.until(
                lambda after=last: _question_after(telegram, user.id, after)  # type: ignore[misc]
            )
            last = question.message_id
            telegram.press(user, question, "Yes")
        return await watch.until(lambda: _login_url(telegram, user.id))
    except TimeoutError:
        raise Stuck(f"{user.first_name} got stuck:\n{telegram.describe_chat(user.id)}") from None


UPDATES_PER_GUIDE = 3


async def greet(telegram: TelegramStandin, watch: Watch, user: TgUser) -> None:
    """``user`` sends /help and gets an answer: the bot may write to them from now on."""
    before = len(telegram.messages(user.id))
    telegram.send_text(user, "/help")
    await watch.until(lambda: True if len(telegram.messages(user.id)) > before else None)


async def guide_all(
    telegram: TelegramStandin, watch: Watch, invited: dict[int, str]
) -> dict[int, str]:
    """Influencers ``i`` of ``invited`` (``i`` → link token) to the login button at once; their
    login URLs by ``i``."""
    urls = await asyncio.gather(
        *(guide(telegram, watch, influencer(i), token) for i, token in invited.items())
    )
    return dict(zip(invited, urls, strict=True))


def redirect_for(graph: GraphStandin, login_url: str, person: FbUser) -> str:
    """What the browser is sent to after ``person`` accepted everything in the login dialog:
    the bot's callback URL with code and state (Facebook's ``#_=_`` dropped, as browsers do)."""
    parts = urlsplit(login_url)
    version = next((p for p in parts.path.split("/") if p.startswith("v")), "")
    query = dict(parse_qsl(parts.query))
    return graph.complete_dialog(query, person, Consent(), version=version).split("#")[0]


def mentions(texts: list[str], pattern: re.Pattern[str]) -> dict[str, int]:
    """How many notices (paragraphs; combined notices are separated by a blank line) mention each
    match of ``pattern``."""
    counts: dict[str, int] = {}
    for text in texts:
        for paragraph in text.split("\n\n"):
            for found in set(pattern.findall(paragraph)):
                counts[found] = counts.get(found, 0) + 1
    return counts


def usable(token: str) -> bool:
    """Whether a link token reaches the invitation. The product takes every deep-link payload
    starting with its manager-link prefix for a manager link, and a random invitation token
    starts with it once in 4,096 (a product bug, see docs/benchmarks.md)."""
    from bot.crypto import MANAGER_LINK_PREFIX

    return not token.startswith(MANAGER_LINK_PREFIX)


async def invite_by_csv(
    telegram: TelegramStandin, watch: Watch, count: int, *, first: int = 0
) -> dict[int, str]:
    """The manager's bulk invite, as a manager does it: a CSV of handles sent to the bot, which
    answers with a CSV of links. Returns ``count`` link tokens by influencer number, from
    ``first`` on, skipping the few links that cannot work (see `usable`)."""
    spare = 1 + count // 100
    numbers = range(first, first + count + spare)
    before = len(telegram.messages(MANAGER.id))
    content = ("handle\n" + "\n".join(handle_of(i) for i in numbers) + "\n").encode()
    telegram.send_document(MANAGER, "influencers.csv", content)

    def links() -> bytes | None:
        for message in telegram.messages(MANAGER.id)[before:]:
            if message.document_bytes is not None:
                return message.document_bytes
        return None

    rows = csv.DictReader(io.StringIO((await watch.until(links, timeout=60)).decode()))
    tokens = {row["handle"]: parse_qs(urlsplit(row["link"]).query)["start"][0] for row in rows}
    invited = {i: tokens[handle_of(i)] for i in numbers if usable(tokens[handle_of(i)])}
    if len(invited) < count + spare:
        print(f"  ({count + spare - len(invited)} invitation link(s) unusable, skipped)")
    return dict(list(invited.items())[:count])


async def seed_invitations(database_url: str, count: int) -> list[str]:
    """Invitations from the manager, created through the product's store; returns link tokens."""
    from datetime import timedelta

    from bot.store import Database

    db = Database(database_url)
    try:
        await db.migrate()
        tokens = []
        for i in range(count):
            _, token = await db.invitations.create_invitation(
                handle=handle_of(i), created_by=MANAGER.id, inviter_name="Maria", ttl=timedelta(7)
            )
            tokens.append(token)
        return tokens
    finally:
        await db.dispose()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


@contextlib.asynccontextmanager
async def profiled(bot: BotProcess, label: str) -> AsyncIterator[None]:
    """With BENCH_PROFILE=<folder> and py-spy installed (``pip install py-spy``, or its path in
    BENCH_PYSPY; not a dependency),
    record where the bot spends its time during the block, as a flame graph
    ``<folder>/<label>.svg`` (for investigation; the figures are then slightly lower). With
    BENCH_PROFILE_FORMAT=raw: collapsed stacks in ``<label>.txt`` instead."""
    folder = os.environ.get("BENCH_PROFILE")
    # BENCH_PYSPY: a py-spy installed elsewhere (e.g. `pip install --target`), not into .venv.
    spy = Path(sys.executable).parent / "py-spy"
    if os.environ.get("BENCH_PYSPY"):
        spy = Path(os.environ["BENCH_PYSPY"])
    if not folder or not spy.exists():
        yield
        return
    os.makedirs(folder, exist_ok=True)
    raw = os.environ.get("BENCH_PROFILE_FORMAT") == "raw"
    recorder = await asyncio.create_subprocess_exec(
        str(spy),
        "record",
        "--pid",
        str(bot.pid),
        "--rate",
        "200",
        "--format",
        "raw" if raw else "flamegraph",
        "--output",
        str(Path(folder) / f"{label}.{'txt' if raw else 'svg'}"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        await recorder.wait()
