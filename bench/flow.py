"""Benchmark 1: the guided flow against the floor.

N influencers at once go from ``/start <token>`` to the login button through the Telegram
stand-in (rate limits off), first with the product, then with the floor bot (`bench/floor.py`),
driven identically. The floor sends unpaced, so the product runs with its sending budget at
Telegram's ceiling (`TELEGRAM_SENDS_PER_SECOND=1000`); at the default 28 sends/s it is paced to
about 12 updates/s, which is Telegram's limit, not the product's cost.
Reported: updates handled per second by each, their ratio, and the bot
process's CPU time per update.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from bench.harness import (
    MANAGER,
    PRODUCT,
    UPDATES_PER_GUIDE,
    Watch,
    bot_env,
    free_port,
    greet,
    guide_all,
    invite_by_csv,
    profiled,
    running,
    scratch_database,
    standins,
)

_WARM_UP = 5
# Telegram's ceiling for a bot with paid broadcasts (the setting's maximum).
UNPACED_SENDS_PER_SECOND = 1000
FLOOR = "bench.floor"


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
        env = bot_env(telegram, graph, url, free_port())
        # The stand-in's flood limits are off here and the floor sends unpaced: the product gets
        # the budget of a bot with paid broadcasts, so both are measured without Telegram's pace.
        env["TELEGRAM_SENDS_PER_SECOND"] = str(UNPACED_SENDS_PER_SECOND)
        # The floor on the product's transport instead of PTB's default (`bench/floor.py`).
        env["BENCH_FLOOR_AIOHTTP"] = os.environ.get("BENCH_FLOOR_AIOHTTP", "0")
        async with running(module, env) as bot, Watch() as watch:
            if module.endswith("floor"):  # the floor or a variant of it: no invitations
                invited = {i: f"t{i}" for i in range(n + _WARM_UP)}
            else:
                await greet(telegram, watch, MANAGER)
                invited = await invite_by_csv(telegram, watch, n + _WARM_UP)
            numbers = list(invited)
            # A few people first, untimed: the first updates pay for lazy imports and connections.
            await guide_all(telegram, watch, {i: invited[i] for i in numbers[n:]})
            timed = {i: invited[i] for i in numbers[:n]}
            async with profiled(bot, f"flow-{module}-{engine}"):
                cpu_before = bot.cpu_seconds()
                began = time.perf_counter()
                await guide_all(telegram, watch, timed)
                seconds = time.perf_counter() - began
                cpu = bot.cpu_seconds() - cpu_before
            updates = n * UPDATES_PER_GUIDE
            return FlowRun(updates / seconds, 1000 * cpu / updates, seconds, len(bot.problems()))


async def run(engine: str, n: int = 100) -> FlowResult:
    """Product and floor in the same run, one after the other, on fresh stand-ins each."""
    product = await _drive(PRODUCT, engine, n)
    floor = await _drive(FLOOR, engine, n)
    return FlowResult(product, floor)
