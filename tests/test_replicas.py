"""Two real bot processes (`python -m bot`) in webhook mode on one PostgreSQL, behind a round-robin
load balancer, with the Telegram and Facebook stand-ins: a batch of influencers goes through both,
Telegram delivers some updates twice, Telegram fails sends while the delivery leader is killed
with SIGKILL mid-batch, and at the end every result and every manager notice has arrived exactly
once and nothing is left in the outbox. PostgreSQL only (SQLite serves one process)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import pytest
import sqlalchemy as sa
from aiohttp import web
from cryptography.fernet import Fernet

from bot.store import Database, LeaderLease
from sandbox.facebook import FbPage, FbUser, GraphStandin, IgAccount
from sandbox.telegram import SentMessage, TelegramStandin, TgUser
from tests.world import MANAGER
from web_callback.app import WEBHOOK_PATH

ROOT = Path(__file__).resolve().parent.parent
BATCH = 10
# Influencers 0-4 connect while both replicas run; 5-7 log in while Telegram refuses sends and
# the leader is then killed; 8-9 log in afterwards, through the one replica left.
FIRST_HALF = range(0, 5)
DURING_OUTAGE = range(5, 8)
AFTER_KILL = range(8, BATCH)

FIGURES: Counter[str] = Counter()


class _Summary:
    @staticmethod
    def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
        if FIGURES:
            terminalreporter.section("two replicas on one PostgreSQL")
            for name, count in FIGURES.items():
                terminalreporter.write_line(f"{name:<58} {count:>5}")


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    manager = request.config.pluginmanager
    if not manager.has_plugin("connect-bot-replica-summary"):
        manager.register(_Summary(), "connect-bot-replica-summary")
    yield


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the load balancer ---------------------------------------------------------------------------

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}
)


@dataclass
class RoundRobin:
    """A tiny reverse proxy on loopback: each kind of request (webhook, callback, other) goes to
    the backends in turn, headers and body as they came. A backend that refuses the connection is
    skipped (nginx's `proxy_next_upstream error`): the request never reached it, so trying the
    next one cannot do anything twice."""

    backends: list[int]
    port: int = 0
    forwarded: Counter[tuple[int, str]] = field(default_factory=Counter)
    refused: Counter[int] = field(default_factory=Counter)
    _turn: Counter[str] = field(default_factory=Counter)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        kind = {WEBHOOK_PATH: "webhook", "/oauth/callback": "callback"}.get(request.path, "other")
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["X-Forwarded-For"] = request.remote or ""
        for _ in range(len(self.backends)):
            port = self.backends[self._turn[kind] % len(self.backends)]
            self._turn[kind] += 1
            try:
                async with self._session.request(
                    request.method,
                    f"http://127.0.0.1:{port}{request.raw_path}",
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                ) as answer:
                    payload = await answer.read()
                    self.forwarded[(port, kind)] += 1
                    return web.Response(
                        status=answer.status,
                        body=payload,
                        headers={
                            k: v
                            for k, v in answer.headers.items()
                            if k.lower() not in _HOP_BY_HOP | {"content-encoding"}
                        },
                    )
            except aiohttp.ClientConnectorError:
                self.refused[port] += 1
        return web.Response(status=502, text="no backend")


# --- the processes -------------------------------------------------------------------------------


@dataclass
class Replica:
    name: str
    port: int
    proc: asyncio.subprocess.Process
    log: list[str]
    drain: asyncio.Task[None]


async def _spawn(name: str, env: dict[str, str], port: int, cwd: Path) -> Replica:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env={**env, "HTTP_PORT": str(port)},
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    log: list[str] = []
    ready = asyncio.Event()

    async def drain() -> None:
        # Read everything, always: a full pipe would block the process.
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace")
            log.append(line)
            if "ready:" in line:
                ready.set()

    task = asyncio.create_task(drain())
    try:
        async with asyncio.timeout(30):
            await ready.wait()
    except TimeoutError:
        proc.kill()
        raise AssertionError(f"replica {name} did not start:\n{''.join(log)}") from None
    return Replica(name, port, proc, log, task)


async def _leader_pid(db: Database) -> int | None:
    """The PostgreSQL backend holding the leader lease (the advisory lock), if any."""
    key = LeaderLease.KEY
    async with db.engine.connect() as conn:
        return (
            await conn.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = :hi AND objid = :lo AND objsubid = 1 AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"hi": key >> 32, "lo": key & 0xFFFF_FFFF},
            )
        ).scalar_one_or_none()


async def _until(check: Callable[[], object], timeout: float, what: str) -> None:  # noqa: ASYNC109
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = check()
                if asyncio.iscoroutine(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} (after {timeout}s)") from None


# --- the people ----------------------------------------------------------------------------------


def _handle(i: int) -> str:
    return f"creator_{i:02d}"


def _influencer(i: int) -> TgUser:
    return TgUser(id=8000 + i, first_name=f"Creator{i}", language_code="en")


def _on_facebook(i: int) -> FbUser:
    ig = IgAccount(id=f"ig-{i}", username=_handle(i), followers_count=1000 + i)
    return FbUser(
        id=f"fb-{i}", name=f"Creator {i}", pages=[FbPage(f"p-{i}", f"Page {i}", instagram=ig)]
    )


def _has_button(message: SentMessage, label: str) -> bool:
    return any(
        label.lower() in str(b.get("text", "")).lower() for row in message.buttons for b in row
    )


def _login_url(message: SentMessage) -> str | None:
    for row in message.buttons:
        for button in row:
            if "/oauth/start?" in str(button.get("url", "")):
                return str(button["url"])
    return None


class Batch:
    def __init__(self, telegram: TelegramStandin, graph: GraphStandin) -> None:
        self.telegram = telegram
        self.graph = graph
        self.browser = httpx.AsyncClient(timeout=30)
        self.tokens: dict[int, str] = {}
        self._dialog = asyncio.Lock()

    async def _next(
        self, user: TgUser, after: int, check: Callable[[SentMessage], bool]
    ) -> SentMessage:
        async with asyncio.timeout(30):
            while True:
                for message in self.telegram.messages(user.id)[after:]:
                    if check(message):
                        return message
                await asyncio.sleep(0.02)

    async def invite_all(self) -> None:
        before = len(self.telegram.messages(MANAGER.id))
        self.telegram.send_text(
            MANAGER, "/invite " + " ".join(f"@{_handle(i)}" for i in range(BATCH))
        )

        def found() -> bool:
            for message in self.telegram.messages(MANAGER.id)[before:]:
                handle = re.search(r"@(creator_\d\d)", message.text)
                token = re.search(r"start=([A-Za-z0-9_-]+)", message.text)
                if handle and token:
                    self.tokens[int(handle.group(1)[-2:])] = token.group(1)
            return len(self.tokens) == BATCH

        await _until(found, 60, "the manager did not get every invitation link")

    async def through_checks(self, i: int) -> str:
        """Open the link, answer both checks; returns the login URL."""
        user = _influencer(i)
        count = len(self.telegram.messages(user.id))
        self.telegram.send_text(user, f"/start {self.tokens[i]}")
        for _ in range(2):
            question = await self._next(user, count, lambda m: _has_button(m, "Yes"))
            count = len(self.telegram.messages(user.id))
            self.telegram.press(user, question, "Yes")
        login = await self._next(user, count, lambda m: _login_url(m) is not None)
        url = _login_url(login)
        assert url is not None
        return url

    async def log_in(self, i: int, url: str) -> None:
        """The browser: Facebook's dialog (one person at a time: the stand-in has one browser
        session), then the redirect to our callback, through the load balancer."""
        async with self._dialog:
            self.graph.set_person(_on_facebook(i))
            # The button opens the bot's /oauth/start (login cookie), then Facebook's dialog.
            start = await self.browser.get(url)
            assert start.status_code == 302, start.text
            dialog = await self.browser.get(start.headers["location"])
        assert dialog.status_code == 302, dialog.text
        page = await self.browser.get(dialog.headers["location"])
        assert page.status_code == 200 and "Connected" in page.text, page.text

    async def connect(self, i: int) -> None:
        await self.log_in(i, await self.through_checks(i))


def _firsts(telegram: TelegramStandin, chat_id: int, text: str) -> int:
    """Messages that were first sent with this text (buttons and edits aside)."""
    return sum(text in m.first_text for m in telegram.messages(chat_id))


def _occurrences(telegram: TelegramStandin, chat_id: int, text: str) -> int:
    return sum(m.text.count(text) for m in telegram.messages(chat_id))


async def _rows(db: Database, query: str) -> list[tuple[object, ...]]:
    async with db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(sa.text(query))).all()]


# --- the test ------------------------------------------------------------------------------------


async def test_two_replicas_deliver_everything_once_when_the_leader_dies(
    postgres_url: str, tmp_path: Path
) -> None:
    pg_url = postgres_url
    telegram, graph = TelegramStandin(), GraphStandin()
    await telegram.start()
    await graph.start()
    ports = [_free_port(), _free_port()]
    balancer = RoundRobin(ports)
    await balancer.start()
    db = Database(pg_url)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "PTB_TIMEDELTA": "true",
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_BASE_URL": telegram.base_url,
        "TELEGRAM_WEBHOOK_URL": f"{balancer.url}{WEBHOOK_PATH}",
        "TELEGRAM_WEBHOOK_SECRET": secrets.token_urlsafe(32),
        "FACEBOOK_APP_ID": graph.app_id,
        "FACEBOOK_APP_SECRET": graph.app_secret,
        "FACEBOOK_GRAPH_URL": graph.base_url,
        "FACEBOOK_DIALOG_URL": graph.base_url,
        "PUBLIC_URL": balancer.url,
        "DATABASE_URL": pg_url,
        "ADMIN_TELEGRAM_IDS": str(MANAGER.id),
        "PLATFORM_NAME": "Brandly",
        "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    replicas: list[Replica] = []
    batch = Batch(telegram, graph)
    try:
        async with asyncio.timeout(240):
            # A starts first (and migrates) and takes the lease; B starts once A leads.
            replicas.append(await _spawn("A", env, ports[0], tmp_path))
            await _until(lambda: _leader_pid(db), 15, "replica A never took the lease")
            first_leader = await _leader_pid(db)
            replicas.append(await _spawn("B", env, ports[1], tmp_path))
            a, b = replicas
            assert await _leader_pid(db) == first_leader  # B waits its turn

            await batch.invite_all()
            # Some updates arrive twice: one after the other (a lost acknowledgement), and both
            # at once (two replicas receiving the same update_id together).
            telegram.deliver_twice(4)
            await asyncio.gather(*(batch.connect(i) for i in FIRST_HALF))
            telegram.deliver_twice(4, concurrently=True)
            urls = dict(
                zip(
                    [*DURING_OUTAGE, *AFTER_KILL],
                    await asyncio.gather(
                        *(batch.through_checks(i) for i in [*DURING_OUTAGE, *AFTER_KILL])
                    ),
                    strict=True,
                )
            )
            for i in FIRST_HALF:
                await telegram.wait_for(_influencer(i).id, "Connected!", timeout=20)
            await telegram.wait_idle(20)  # nothing in flight anywhere: a clean moment
            await _until(lambda: _nothing_pending(db), 20, "the first half was not delivered")
            assert {p for p, kind in balancer.forwarded if kind == "callback"} == set(ports)
            assert {p for p, kind in balancer.forwarded if kind == "webhook"} == set(ports)

            # Telegram refuses every send; the verdicts still commit, their messages wait.
            sends_before = len(telegram.calls("sendMessage"))
            telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=10**6)
            await asyncio.gather(*(batch.log_in(i, urls[i]) for i in DURING_OUTAGE))
            # Every result and notice of theirs has been tried (and refused) at least once.
            await _until(
                lambda: _all_tried(db, 2 * len(DURING_OUTAGE)),
                20,
                "the leader never tried to send the results",
            )
            pending = await _rows(db, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
            assert pending[0][0] >= 2 * len(DURING_OUTAGE)
            a.proc.send_signal(signal.SIGKILL)  # the leader dies mid-batch
            await a.proc.wait()
            FIGURES["sends refused with 502 before the kill"] = (
                len(telegram.calls("sendMessage")) - sends_before
            )
            telegram.clear_faults()

            # B takes over the lease and delivers what A had committed but not sent.
            await _until(
                lambda: _new_leader(db, first_leader), 15, "replica B never took over the lease"
            )
            for i in DURING_OUTAGE:
                await telegram.wait_for(_influencer(i).id, "Connected!", timeout=60)
            # The batch goes on through the replica that is left.
            await asyncio.gather(*(batch.log_in(i, urls[i]) for i in AFTER_KILL))
            telegram.send_text(MANAGER, "/help")  # and Telegram's deliveries still get through
            await telegram.wait_for(MANAGER.id, "/invite", timeout=20)

            # Everything arrives, exactly once.
            for i in range(BATCH):
                await telegram.wait_for(_influencer(i).id, "Connected!", timeout=60)
                await telegram.wait_for(MANAGER.id, f"@{_handle(i)} is connected", timeout=60)
            await _until(lambda: _nothing_pending(db), 60, "the outbox still has messages to send")
            await asyncio.sleep(2.0)  # a duplicate would have been sent by now
            for i in range(BATCH):
                user = _influencer(i)
                assert _occurrences(telegram, user.id, "Connected!") == 1, i
                # Each step shown once: no update was handled twice.
                for step in ("Hi Creator", "Step 1 of 3", "Step 2 of 3", "Step 3 of 3"):
                    assert _firsts(telegram, user.id, step) == 1, (i, step)
                assert _occurrences(telegram, MANAGER.id, f"@{_handle(i)} is connected") == 1, i
            statuses = Counter(s for (s,) in await _rows(db, "SELECT status FROM outbox"))
            assert set(statuses) <= {"sent", "superseded"}, statuses
            assert await _rows(db, "SELECT COUNT(*) FROM connection WHERE status = 'active'") == [
                (BATCH,)
            ]
            verdicts = await _rows(
                db, "SELECT COUNT(*) FROM invitation_event WHERE kind = 'verdict'"
            )
            assert verdicts == [(BATCH,)]
            exchanges = [p for _, p, q in graph.requests if p.endswith("/oauth/access_token")
                         and "code" in q]  # fmt: skip
            assert len(exchanges) == BATCH
            duplicates = [d for d in telegram.webhook_deliveries if d.duplicate]
            assert len(duplicates) == 8
            assert b.proc.returncode is None  # the survivor is fine

            FIGURES["influencers connected (one batch)"] = BATCH
            FIGURES["webhook updates delivered twice"] = len(duplicates)
            FIGURES["webhook POSTs in all"] = len(telegram.webhook_deliveries)
            FIGURES["processes killed with SIGKILL (the delivery leader)"] = 1
            FIGURES["results committed by A, delivered by B after the kill"] = len(DURING_OUTAGE)
            FIGURES["requests the balancer could not hand to the dead replica"] = sum(
                balancer.refused.values()
            )
            for (port, kind), count in sorted(balancer.forwarded.items()):
                name = "A" if port == ports[0] else "B"
                FIGURES[f"{kind} requests handled by replica {name}"] = count
            FIGURES["results and notices lost or duplicated"] = 0

        b.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(b.proc.wait(), 30) == 0, "".join(b.log)
        await b.drain
        log = "".join(b.log)
        assert "Traceback" not in log, log
        assert telegram.token not in log and graph.app_secret not in log
    finally:
        for replica in replicas:
            if replica.proc.returncode is None:
                replica.proc.kill()
                await replica.proc.wait()
            replica.drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replica.drain
        await batch.browser.aclose()
        await balancer.stop()
        await db.dispose()
        await telegram.stop()
        await graph.stop()


async def _new_leader(db: Database, old: int | None) -> bool:
    pid = await _leader_pid(db)
    return pid is not None and pid != old


async def _all_tried(db: Database, at_least: int) -> bool:
    rows = await _rows(
        db,
        "SELECT attempts FROM outbox WHERE status = 'pending' AND kind IN ('send', 'notice')",
    )
    return len(rows) >= at_least and all(int(str(a)) > 0 for (a,) in rows)


async def _nothing_pending(db: Database) -> bool:
    return await _rows(db, "SELECT COUNT(*) FROM outbox WHERE status = 'pending'") == [(0,)]
