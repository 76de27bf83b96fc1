"""Benchmark 4: callbacks under load.

N influencers (default 200) are at the login button; their Facebook redirects reach the callback
route at the same moment (or, with `spread`, evenly over that many seconds) while the Graph
stand-in answers every call after 50 ms. Measured: the
latency of each callback request as the browser sees it (p50, p99), and the bot process's CPU
time (user + system, read from /proc/<pid>/stat) per verified callback: until the last browser
got its page, and until both result messages of every callback were delivered as well.
"""

from __future__ import annotations

import asyncio
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
    influencer,
    invite_by_csv,
    on_facebook,
    open_logins,
    percentile,
    profiled,
    redirect_for,
    running,
    scratch_database,
    standins,
)

GRAPH_LATENCY = 0.05


@dataclass(frozen=True)
class CallbackResult:
    n: int
    p50: float
    p99: float
    cpu_ms_route: float  # per callback, until the last browser was answered
    cpu_ms_total: float  # per callback, until its two messages were delivered too
    connected: int  # callbacks that ended in a connection
    errors: int  # callbacks not answered 200
    bench_cpu_share: float  # how busy this process (the stand-ins) was meanwhile
    problems: int


async def run(engine: str, n: int = 200, *, spread: float = 0.0) -> CallbackResult:
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
            graph.latency = GRAPH_LATENCY
            await asyncio.sleep(0.5)  # nothing left over from the flow

            def delivered() -> bool | None:
                done = all(
                    telegram.messages(chat)[-1].message_id > last
                    for chat, last in login_message.items()
                )
                return True if done else None

            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as browser:

                async def open_callback(i: int, url: str) -> tuple[float, int, str]:
                    await asyncio.sleep(spread * i / n)
                    began = time.perf_counter()
                    async with browser.get(url, allow_redirects=False, headers=jar) as response:
                        page = await response.text()
                        return time.perf_counter() - began, response.status, page

                async with profiled(bot, f"{'spread' if spread else 'callbacks'}-{engine}"):
                    cpu_before = bot.cpu_seconds()
                    own_before = time.process_time()
                    began = time.perf_counter()
                    answers = await asyncio.gather(
                        *(open_callback(i, u) for i, u in enumerate(redirects))
                    )
                    cpu_route = bot.cpu_seconds() - cpu_before
                    await watch.until(delivered, timeout=120)
                    cpu_total = bot.cpu_seconds() - cpu_before
                    own = (time.process_time() - own_before) / (time.perf_counter() - began)
            latencies = [a[0] for a in answers]
            return CallbackResult(
                n=n,
                p50=percentile(latencies, 50),
                p99=percentile(latencies, 99),
                cpu_ms_route=1000 * cpu_route / n,
                cpu_ms_total=1000 * cpu_total / n,
                connected=sum(1 for a in answers if a[1] == 200 and "Connected" in a[2]),
                errors=sum(1 for a in answers if a[1] != 200),
                bench_cpu_share=own,
                problems=len(bot.problems()),
            )
