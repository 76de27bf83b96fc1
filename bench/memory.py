"""Benchmark 3: memory and start-up.

A database with 10,000 invitations and 2,000 connections (with their people, login attempts and
events) is written once through the product's models; then `python -m bot` starts on it (the
migrations find it up to date). Measured: seconds from spawning the process to its "ready:" log
line (polling and the callback server up), and the process's resident memory (VmRSS, and the
peak VmHWM, from /proc/<pid>/status) once ready and after some work: a few influencers through
the flow and their callbacks, and the manager's commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import aiohttp

from bench.harness import (
    MANAGER,
    PRODUCT,
    Watch,
    bot_env,
    free_port,
    greet,
    guide_all,
    handle_of,
    influencer,
    on_facebook,
    open_logins,
    redirect_for,
    running,
    standins,
    usable,
)
from bot.crypto import new_secret, secret_hash
from bot.models import (
    Connection,
    Invitation,
    InvitationEvent,
    InviteStatus,
    LoginAttempt,
    Person,
    Step,
    utcnow,
)
from bot.store import Database

INVITATIONS = 10_000
CONNECTIONS = 2_000
WORKLOAD = 20  # influencers through the flow and the callback after start-up
_CHUNK = 1_000
_SCOPES = "instagram_basic,instagram_manage_insights,pages_show_list,pages_read_engagement"


@dataclass(frozen=True)
class MemoryResult:
    ready_seconds: float
    rss_ready_mb: float
    rss_after_work_mb: float
    peak_mb: float
    problems: int


async def seed(database_url: str, runs: int) -> list[str]:
    """The big database; returns link tokens of pending invitations, ``WORKLOAD`` for each run
    (only the hashes are stored, so the tokens are made here)."""
    db = Database(database_url)
    await db.migrate()
    now = utcnow()
    tokens: list[str] = []
    while len(tokens) < WORKLOAD * runs:
        token = new_secret()
        if usable(token):
            tokens.append(token)
    try:
        for start in range(0, INVITATIONS, _CHUNK):
            async with db.session() as s:
                invitations = []
                for i in range(start, min(start + _CHUNK, INVITATIONS)):
                    connected = i >= INVITATIONS - CONNECTIONS
                    invitations.append(
                        Invitation(
                            token_hash=secret_hash(tokens[i] if i < len(tokens) else f"seed-{i}"),
                            handle=handle_of(i),
                            created_by=MANAGER.id,
                            inviter_name="Maria",
                            status=InviteStatus.CONNECTED if connected else InviteStatus.PENDING,
                            step=Step.DONE if connected else Step.WELCOME,
                            telegram_user_id=1_000_000 + i if connected else None,
                            expires_at=now + timedelta(days=14),
                            created_at=now,
                            updated_at=now,
                        )
                    )
                s.add_all(invitations)
                await s.flush()
                for invite in invitations:
                    assert invite.id is not None
                    s.add(_event(invite.id, "created", InviteStatus.PENDING))
                    if invite.telegram_user_id is None:
                        continue
                    s.add(Person(telegram_id=invite.telegram_user_id, telegram_language="en"))
                    for kind in ("opened", "check_passed", "check_passed", "login_started"):
                        s.add(_event(invite.id, kind, InviteStatus.OPENED))
                    s.add(_event(invite.id, "verdict", InviteStatus.CONNECTED))
                    s.add(
                        LoginAttempt(
                            invitation_id=invite.id,
                            telegram_user_id=invite.telegram_user_id,
                            state_hash=secret_hash(f"state-{invite.id}"),
                            created_at=now,
                            expires_at=now + timedelta(minutes=30),
                            used_at=now,
                            outcome="connected",
                        )
                    )
                    s.add(
                        Connection(
                            invitation_id=invite.id,
                            facebook_user_id=f"fb-{invite.id}",
                            page_id=f"p-{invite.id}",
                            page_name=f"Page {invite.id}",
                            instagram_id=f"ig-{invite.id}",
                            instagram_username=invite.handle,
                            followers_count=1000 + invite.id,
                            permissions=_SCOPES,
                            token_encrypted="gAAAAA" + "x" * 180,
                            token_expires_at=now + timedelta(days=60),
                            data_access_expires_at=now + timedelta(days=90),
                            created_at=now,
                        )
                    )
                await s.commit()
    finally:
        await db.dispose()
    return tokens


def _event(invitation_id: int, kind: str, status: InviteStatus) -> InvitationEvent:
    return InvitationEvent(invitation_id=invitation_id, kind=kind, status=status, at=utcnow())


async def run(database_url: str, tokens: list[str], run: int) -> MemoryResult:
    """Start the bot on the seeded database, measure, do some work (with run ``run``'s share of
    the pending invitations), measure again."""
    first = run * WORKLOAD
    invited = {i: tokens[i] for i in range(first, first + WORKLOAD)}
    async with standins() as (telegram, graph):
        env = bot_env(telegram, graph, database_url, free_port())
        async with running(PRODUCT, env) as bot, Watch() as watch:
            rss_ready, _ = bot.memory_mb()
            await greet(telegram, watch, MANAGER)
            logins = await guide_all(telegram, watch, invited)
            logins, cookie = await open_logins(logins)
            jar = {"Cookie": cookie}  # the browser that opened the login buttons
            redirects = [redirect_for(graph, u, on_facebook(i)) for i, u in logins.items()]
            login_message = {
                influencer(i).id: telegram.last_message(influencer(i).id).message_id
                for i in invited
            }
            async with aiohttp.ClientSession() as browser:
                for url in redirects:
                    async with browser.get(url, allow_redirects=False, headers=jar) as response:
                        await response.read()

            def delivered() -> bool | None:
                done = all(
                    telegram.messages(chat)[-1].message_id > last
                    for chat, last in login_message.items()
                )
                return True if done else None

            await watch.until(delivered, timeout=60)
            rss_after, peak = bot.memory_mb()
            return MemoryResult(bot.ready_after, rss_ready, rss_after, peak, len(bot.problems()))
