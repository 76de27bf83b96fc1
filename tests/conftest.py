"""Shared fixtures: a real database (SQLite file, and PostgreSQL when reachable) per test."""

from __future__ import annotations

import contextlib
import os

# PTB 22 warns when it builds a RetryAfter (any 429) unless told to use timedeltas; with
# filterwarnings=error that warning would replace the exception the bot must handle.
os.environ.setdefault("PTB_TIMEDELTA", "true")

import secrets
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.store import Database
from sandbox.facebook import GraphStandin
from tests.world import World, close_world, make_world

PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("TEST_PG_DATABASE", "test")
# CI sets this: a missing PostgreSQL is then a failure, not a skip.
REQUIRE_POSTGRES = os.environ.get("REQUIRE_POSTGRES") == "1"

_pg_skipped: list[str] = []


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


async def _create_pg_database() -> str:
    import asyncpg

    name = f"connectbot_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def _drop_pg_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _fresh_postgres(request: pytest.FixtureRequest, what: str) -> AsyncIterator[str]:
    """A new database on the server, dropped afterwards; skipped loudly (or failed under
    REQUIRE_POSTGRES=1) where no server is reachable."""
    if not _postgres_reachable():
        reason = f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{reason}, but REQUIRE_POSTGRES=1")
        _pg_skipped.append(request.node.nodeid)
        pytest.skip(f"{reason}: {what} NOT tested")
    name = await _create_pg_database()
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await _drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: object) -> AsyncIterator[str]:
    """A fresh, empty database for one test, on each engine."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/test.sqlite3"
        return
    async with _fresh_postgres(request, "PostgreSQL variant") as url:
        yield url


@pytest.fixture
async def postgres_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh PostgreSQL database, for tests that only make sense there (several processes on
    one database)."""
    async with _fresh_postgres(request, "PostgreSQL-only test") as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.migrate()
    try:
        yield database
    finally:
        await database.dispose()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_skipped:
        terminalreporter.section("PostgreSQL NOT TESTED", sep="!", red=True, bold=True)
        terminalreporter.write_line(
            f"{len(_pg_skipped)} PostgreSQL test variants were skipped: no server at "
            f"{PG_HOST}:{PG_PORT}. Start one (or set TEST_PG_HOST/TEST_PG_PORT) to test them.",
            red=True,
        )


@pytest.fixture
async def fb() -> AsyncIterator[GraphStandin]:
    """The Graph stand-in alone, for tests of the stand-in itself."""
    standin = GraphStandin()
    await standin.start()
    yield standin
    await standin.stop()
    assert not standin.internal_errors


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    """The whole product against the stand-ins, on each database engine."""
    w = await make_world(database_url)
    try:
        yield w
    finally:
        await close_world(w)


@pytest.fixture
async def ig_world(database_url: str) -> AsyncIterator[World]:
    """The whole product with Instagram Login configured (the second Meta app, on its
    stand-in); the periodic jobs stopped, so only the test runs health rounds."""
    w = await make_world(database_url, instagram=True)
    await w.bot.jobs.stop()
    try:
        yield w
    finally:
        await close_world(w)
        assert not w.instagram.internal_errors
