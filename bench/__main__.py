"""``python -m bench``: run the benchmarks and print their figures (medians of several runs).

    python -m bench                      # everything, SQLite and PostgreSQL, 3 runs each
    python -m bench --db sqlite --runs 5
    python -m bench --only flow,burst

PostgreSQL is the tests' server (127.0.0.1:5432, user postgres, database ``test``; override with
TEST_PG_HOST, TEST_PG_PORT, TEST_PG_USER, TEST_PG_DATABASE); every run works in a scratch database
of its own, dropped afterwards. Figures are printed, never asserted: see docs/benchmarks.md for
what they mean and the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import burst, callbacks, flow, memory
from bench.harness import ENGINES, median, postgres_reachable, scratch_database

SCENARIOS = ("flow", "burst", "memory", "callbacks", "spread")
SPREAD_SECONDS = 10.0  # "spread": the callbacks arrive evenly over this long


@dataclass
class Figure:
    """One line of the table: a name, how to print it, the target, and each run's value."""

    name: str
    unit: str
    target: str
    meets: Callable[[float], bool] | None = None
    worst: bool = False  # the worst run instead of the median (for counts that must be 0)
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, engine: str, value: float) -> None:
        self.values.setdefault(engine, []).append(value)

    def cell(self, engine: str) -> str:
        runs = self.values.get(engine)
        if not runs:
            return "–"
        value = max(runs) if self.worst else median(runs)
        mark = ""
        if self.meets is not None:
            mark = " ✓" if self.meets(value) else " ✗"
        return f"{_format(value)}{self.unit}{mark}"


def _format(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


class Report:
    def __init__(self) -> None:
        self.figures: dict[str, Figure] = {}
        self.notes: list[str] = []

    def figure(
        self,
        name: str,
        engine: str,
        value: float,
        *,
        unit: str = "",
        target: str = "",
        meets: Callable[[float], bool] | None = None,
        worst: bool = False,
    ) -> None:
        if name not in self.figures:
            self.figures[name] = Figure(name, unit, target, meets, worst)
        self.figures[name].add(engine, value)

    def print(self, engines: Sequence[str], runs: int) -> None:
        print()
        print(
            f"Medians of {runs} run(s) (lost, told twice, 429: the worst run); "
            "✓/✗: target met or not."
        )
        print()
        print("| figure | " + " | ".join(engines) + " | target |")
        print("|---|" + "---|" * len(engines) + "---|")
        for f in self.figures.values():
            cells = " | ".join(f.cell(e) for e in engines)
            print(f"| {f.name} | {cells} | {f.target} |")
        for note in self.notes:
            print(f"\n{note}")


def machine() -> str:
    import sqlalchemy
    import telegram

    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"python-telegram-bot {telegram.__version__}, SQLAlchemy {sqlalchemy.__version__}"
    )


async def run_engine(
    engine: str, runs: int, only: Sequence[str], sizes: argparse.Namespace, report: Report
) -> None:
    seeded: tuple[str, list[str]] | None = None
    async with scratch_database(engine) as big:
        if "memory" in only:
            began = time.perf_counter()
            tokens = await memory.seed(big, runs)
            seeded = (big, tokens)
            print(
                f"[{engine}] seeded {memory.INVITATIONS} invitations, {memory.CONNECTIONS} "
                f"connections in {time.perf_counter() - began:.1f}s",
                flush=True,
            )
        for run in range(runs):
            if "flow" in only:
                r = await flow.run(engine, sizes.influencers)
                report.figure(
                    "1 guided flow: product updates/s", engine, r.product.updates_per_second
                )
                report.figure("1 guided flow: floor updates/s", engine, r.floor.updates_per_second)
                report.figure(
                    "1 guided flow: product ÷ floor",
                    engine,
                    r.ratio,
                    target="≥ 0.7",
                    meets=lambda v: v >= 0.7,
                )
                report.figure(
                    "1 bot CPU per update: product", engine, r.product.cpu_ms_per_update, unit=" ms"
                )
                report.figure(
                    "1 bot CPU per update: floor", engine, r.floor.cpu_ms_per_update, unit=" ms"
                )
                _say(engine, run, f"flow: {r.product} / {r.floor} ratio {r.ratio:.2f}")
            if "burst" in only:
                b = await burst.run(engine, sizes.burst)
                report.figure(
                    f"2 burst of {b.n}: seconds until everybody knows", engine, b.seconds, unit=" s"
                )
                report.figure(
                    "2 burst: ideal ÷ measured",
                    engine,
                    b.efficiency,
                    target="≥ 0.9",
                    meets=lambda v: v >= 0.9,
                )
                report.figure(
                    "2 burst: results lost", engine, b.lost, target="0", meets=_zero, worst=True
                )
                report.figure(
                    "2 burst: told twice", engine, b.told_twice, target="0", meets=_zero, worst=True
                )
                report.figure(
                    "2 burst: sends answered 429",
                    engine,
                    100 * b.refused_share,
                    unit=" %",
                    target="< 1 %",
                    meets=lambda v: v < 1,
                    worst=True,
                )
                report.figure("2 burst: messages to the manager", engine, b.manager_messages)
                _say(engine, run, f"burst: {b} ideal {b.ideal:.1f}s")
            if "memory" in only and seeded is not None:
                m = await memory.run(seeded[0], seeded[1], run)
                report.figure(
                    "3 start to ready",
                    engine,
                    m.ready_seconds,
                    unit=" s",
                    target="≤ 2 s",
                    meets=lambda v: v <= 2,
                )
                # Issue 10's targets.
                report.figure(
                    "3 memory (RSS) when ready",
                    engine,
                    m.rss_ready_mb,
                    unit=" MB",
                    target="≤ 95 MB",
                    meets=lambda v: v <= 95,
                )
                report.figure(
                    "3 memory (RSS) after work, peak",
                    engine,
                    m.peak_mb,
                    unit=" MB",
                    target="≤ 110 MB",
                    meets=lambda v: v <= 110,
                )
                _say(engine, run, f"memory: {m}")
            if "callbacks" in only:
                c = await callbacks.run(engine, sizes.callbacks)
                report.figure(f"4 {c.n} callbacks: p50 latency", engine, c.p50, unit=" s")
                report.figure(
                    "4 callbacks: p99 latency",
                    engine,
                    c.p99,
                    unit=" s",
                    target="≤ 3 s",
                    meets=lambda v: v <= 3,
                )
                report.figure(
                    "4 bot CPU per verified callback (route)",
                    engine,
                    c.cpu_ms_route,
                    unit=" ms",
                    target="≤ 15 ms",
                    meets=lambda v: v <= 15,
                )
                report.figure(
                    "4 bot CPU per callback incl. its 2 messages",
                    engine,
                    c.cpu_ms_total,
                    unit=" ms",
                )
                report.figure(
                    "4 stand-ins' process busy meanwhile",
                    engine,
                    100 * c.bench_cpu_share,
                    unit=" %",
                )
                _say(engine, run, f"callbacks: {c}")
            if "spread" in only:
                c = await callbacks.run(engine, sizes.callbacks, spread=SPREAD_SECONDS)
                report.figure(
                    f"4b {c.n} callbacks over {SPREAD_SECONDS:.0f} s: p99 latency",
                    engine,
                    c.p99,
                    unit=" s",
                    target="< 1 s",
                    meets=lambda v: v < 1,
                )
                report.figure(
                    "4b bot CPU per verified callback (route)", engine, c.cpu_ms_route, unit=" ms"
                )
                _say(engine, run, f"spread callbacks: {c}")


def _zero(value: float) -> bool:
    return value == 0


def _say(engine: str, run: int, text: str) -> None:
    print(f"[{engine} run {run + 1}] {text}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=[*ENGINES, "both"], default="both")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--influencers", type=int, default=100, help="guided flow (1)")
    parser.add_argument("--burst", type=int, default=150, help="burst of results (2)")
    parser.add_argument("--callbacks", type=int, default=200, help="callbacks under load (4)")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    engines = list(ENGINES) if args.db == "both" else [args.db]
    report = Report()
    if "postgresql" in engines and not postgres_reachable():
        engines.remove("postgresql")
        report.notes.append("!!! PostgreSQL NOT MEASURED: no server at TEST_PG_HOST:TEST_PG_PORT.")
    print(f"Machine: {machine()}", flush=True)
    began = time.perf_counter()
    for engine in engines:
        asyncio.run(run_engine(engine, args.runs, only, args, report))
    report.print(engines, args.runs)
    print(f"\n(took {time.perf_counter() - began:.0f} s)")
    if not engines:
        sys.exit(1)


if __name__ == "__main__":
    main()
