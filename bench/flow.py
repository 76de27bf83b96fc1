"""Benchmark 1: the guided flow against the floor.

N influencers at once go from ``/start <token>`` to the login button through the Telegram
stand-in (rate limits off), first with the product, then with the floor bot (`bench/floor.py`),
driven identically. Reported: updates handled per second by each, their ratio, and the bot
process's CPU time per update.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.harness import (
    MANAGER,
    UPDATES_PER_GUIDE,
    Watch,
    bot_env,
    free_port,
    greet,
    guide,
    handle_of,
    influencer,
    invite_by_csv,
    profiled,
    running,
    scratch_database,
    standins,
)

_WARM_UP = 5


@dataclass(frozen=True)
class FlowRun:
    updates_per_second: float
    cpu_ms_per_update: float
    seconds: float
    problems: int  # error lines in the bot's log


@dataclass(frozen=True)
class FlowResult:
    product: FlowRun
    floor: FlowRun

    @property
    def ratio(self) -> float:
        return self.product.updates_per_second / self.floor.updates_per_second


async def _drive(module: str, engine: str, n: int) -> FlowRun:
    async with scratch_database(engine) as url, standins() as (telegram, graph):
        total = n + _WARM_UP
        people = [influencer(i) for i in range(total)]
        env = bot_env(telegram, graph, url, free_port())
        async with running(module, env) as bot, Watch() as watch:
            if module == "bot":
                await greet(telegram, watch, MANAGER)
                tokens = await invite_by_csv(telegram, watch, [handle_of(i) for i in range(total)])
            else:
                tokens = [f"t{i}" for i in range(total)]
            # A few people first, untimed: the first updates pay for lazy imports and connections.
            await asyncio.gather(
                *(guide(telegram, watch, p, t) for p, t in zip(people[n:], tokens[n:], strict=True))
            )
            people, tokens = people[:n], tokens[:n]
            async with profiled(bot, f"flow-{module}-{engine}"):
                cpu_before = bot.cpu_seconds()
                own_before = time.process_time()
                began = time.perf_counter()
                await asyncio.gather(
                    *(guide(telegram, watch, p, t) for p, t in zip(people, tokens, strict=True))
                )
                seconds = time.perf_counter() - began
                cpu = bot.cpu_seconds() - cpu_before
                own = time.process_time() - own_before
            print(f"  [{module}] bench process (stand-ins + people) CPU {own / seconds:.0%}")
            updates = n * UPDATES_PER_GUIDE
            return FlowRun(updates / seconds, 1000 * cpu / updates, seconds, len(bot.problems()))


async def run(engine: str, n: int = 100) -> FlowResult:
    """Product and floor in the same run, one after the other, on fresh stand-ins each."""
    product = await _drive("bot", engine, n)
    floor = await _drive("bench.floor", engine, n)
    return FlowResult(product, floor)
