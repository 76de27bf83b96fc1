"""Benchmark 2: a burst of results under Telegram's limits.

N influencers (default 150) are at the login button; their Facebook callbacks all arrive at once,
while the Telegram stand-in enforces 30 messages/s overall and 1 message/s per chat, answering 429
with retry_after beyond that, as Telegram does. Measured: the time until every influencer has
their result in chat and the inviting manager has been told about every one of them, against the
ideal of N / 30 s (one message per influencer at Telegram's overall limit).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

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
    invite_by_csv,
    mentions,
    on_facebook,
    open_logins,
    profiled,
    redirect_for,
    running,
    scratch_database,
    standins,
)

TELEGRAM_PER_SECOND = 30
_SEND_METHODS = frozenset({"sendmessage", "editmessagetext", "editmessagereplymarkup"})
_HANDLE = re.compile(r"@(bench_u\d{5})\b")
_TIMEOUT = 120.0
_AFTERWARDS = 1.5  # how long to keep looking for duplicates once everything arrived


@dataclass(frozen=True)
class BurstResult:
    n: int
    seconds: float  # until everybody knows (the timeout when something never arrived)
    lost: int  # influencers without their result, plus results the manager never heard of
    told_twice: int  # influencers with two results, plus results the manager heard twice
    sends: int  # sendMessage and edit calls during the burst
    refused: int  # of those, answered 429
    manager_messages: int
    callback_errors: int  # callbacks not answered 200
    problems: int
    duplicates: tuple[str, ...] = ()  # who was told twice, and what

    @property
    def ideal(self) -> float:
        return self.n / TELEGRAM_PER_SECOND

    @property
    def efficiency(self) -> float:
        return self.ideal / self.seconds

    @property
    def refused_share(self) -> float:
        return self.refused / self.sends if self.sends else 0.0


def _sends(requests: list[tuple[str, dict[str, object]]]) -> int:
    return sum(1 for method, _ in requests if method.lower() in _SEND_METHODS)


async def run(engine: str, n: int = 150) -> BurstResult:
    async with scratch_database(engine) as url, standins() as (telegram, graph):
        env = bot_env(telegram, graph, url, free_port())
        async with running(PRODUCT, env) as bot, Watch() as watch:
            await greet(telegram, watch, MANAGER)
            invited = await invite_by_csv(telegram, watch, n)
            logins = await guide_all(telegram, watch, invited)
            logins, cookie = await open_logins(logins)
            jar = {"Cookie": cookie}  # the browser that opened the login buttons
            redirects = [redirect_for(graph, u, on_facebook(i)) for i, u in logins.items()]
            login_message = {
                influencer(i).id: telegram.last_message(influencer(i).id).message_id
                for i in invited
            }
            manager_seen = telegram.last_message(MANAGER.id).message_id
            handles = {handle_of(i) for i in invited}
            await asyncio.sleep(0.5)  # nothing left over from the flow

            def results() -> dict[int, int]:
                return {
                    chat: sum(1 for m in telegram.messages(chat) if m.message_id > last)
                    for chat, last in login_message.items()
                }

            def manager_news() -> list[str]:
                return [
                    m.text for m in telegram.messages(MANAGER.id) if m.message_id > manager_seen
                ]

            def everybody_knows() -> bool | None:
                if not all(results().values()):
                    return None
                return True if handles <= set(mentions(manager_news(), _HANDLE)) else None

            telegram.set_rate_limits(global_per_second=TELEGRAM_PER_SECOND, per_chat_per_second=1)
            sends_before = _sends(telegram.requests)
            refused_before = telegram.rate_limited_count
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as browser:

                async def open_callback(url: str) -> int:
                    async with browser.get(url, allow_redirects=False, headers=jar) as response:
                        await response.read()
                        return response.status

                async with profiled(bot, f"burst-{engine}"):
                    began = time.perf_counter()
                    answers = asyncio.gather(*(open_callback(u) for u in redirects))
                    try:
                        await watch.until(everybody_knows, timeout=_TIMEOUT)
                        seconds = time.perf_counter() - began
                    except TimeoutError:
                        seconds = _TIMEOUT
                    statuses = await answers
            await asyncio.sleep(_AFTERWARDS)
            told = results()
            heard = mentions(manager_news(), _HANDLE)
            duplicates = [
                f"chat {chat}: " + " | ".join(m.text[:60] for m in telegram.messages(chat)[-count:])
                for chat, count in told.items()
                if count > 1
            ] + [f"manager heard @{h} {c} times" for h, c in heard.items() if c > 1]
            return BurstResult(
                n=n,
                seconds=seconds,
                lost=sum(1 for c in told.values() if c == 0) + len(handles - set(heard)),
                told_twice=sum(1 for c in told.values() if c > 1)
                + sum(1 for h in handles if heard.get(h, 0) > 1),
                sends=_sends(telegram.requests) - sends_before,
                refused=telegram.rate_limited_count - refused_before,
                manager_messages=len(manager_news()),
                callback_errors=sum(1 for s in statuses if s != 200),
                problems=len(bot.problems()),
                duplicates=tuple(duplicates),
            )
