"""The engine's overhead against its floors: ``python -m benchmarks.floors [--quick]``.

The overhead scenario's interleaved rounds (``scenarios/overhead.py``: sync calls one by
one, async calls one by one, then async calls 100 in flight), for each layer beside the
client it is built on, on the same transport:

- the raw openai SDK twice: its async client on the SDK's aiohttp transport (what the
  engine uses by default) and on its default httpx one; the sync client is the SDK's
  default in both, as the engine's is;
- the engine, against the first (sync against the raw sync client): with the OpenAI route
  alone (the plain request, nothing to hedge) and with all three routes (a whole reply then
  read through the stream, its first chunk a sign of life for hedging);
- the engine with ``RedisState`` (a real local redis-server) against the engine in memory;
- ``ChatResilientLLM`` (one route and three) against LangChain's ``ChatOpenAI`` on the
  aiohttp transport.

Every ratio is taken within a round, then the median over rounds is reported. Then the
resident set of a raw and an engine worker after 10,000, 50,000 and 100,000 async calls
(``memory.py``). Results go to ``results/floors.json`` and ``results/floors.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from resilient_llm.testing.chaos import ChaosServer

from .harness import one_shot, run_interleaved
from .memory import MARKS
from .redis_server import RedisServer
from .run import RESULTS, _cpu_seconds, _machine
from .scenarios import overhead
from .stats import median
from .systems import LABELS, REDIS_URL_VARIABLE

__all__ = ["PAIRS", "SYSTEMS", "main"]

SYSTEMS = (
    "raw_httpx",
    "raw",
    "engine_one",
    "engine",
    "engine_redis",
    "lc_openai",
    "lc_resilient_one",
    "lc_resilient",
)
PAIRS = (
    # (system, its floor, what the ratio says, whether the targets apply)
    ("engine_one", "raw", "engine, one route ÷ raw SDK (aiohttp)", True),
    ("lc_resilient_one", "lc_openai", "ChatResilientLLM, one route ÷ ChatOpenAI (aiohttp)", True),
    ("engine", "raw", "engine, three routes (hedged) ÷ raw SDK (aiohttp)", True),
    ("lc_resilient", "lc_openai", "ChatResilientLLM, three routes ÷ ChatOpenAI (aiohttp)", True),
    ("engine", "raw_httpx", "engine ÷ raw SDK (default httpx transport)", False),
    ("engine_redis", "engine", "RedisState ÷ memory", False),
)
MEMORY_SYSTEMS = ("raw", "engine")
SEQ_TARGET = 1.10  # at most this many times the floor's µs per sequential call
CONC_TARGET = 0.90  # at least this share of the floor's calls per second at concurrency 100

_MODES = (
    ("seq_us", "sync sequential"),
    ("aseq_us", "async sequential"),
    ("conc_rps", "calls/s @100"),
)


def _log(message: str) -> None:
    print(message, flush=True)


def ratios(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float | None]]:
    """Per pair, the median over rounds of each round's ratio: µs per call system ÷ floor
    (sequential, lower is better), calls per second system ÷ floor (concurrent, higher)."""
    out: dict[str, dict[str, float | None]] = {}
    for system, floor, _, _ in PAIRS:
        figures: dict[str, float | None] = {}
        for key, _ in _MODES:
            per_round = [
                r[system][key] / r[floor][key]
                for r in rounds
                if system in r and floor in r and r[system].get(key) and r[floor].get(key)
            ]
            figures[key] = median(per_round) if per_round else None
        out[f"{system}/{floor}"] = figures
    return out


def _memory(quick: bool) -> dict[str, Any]:
    marks = MARKS[quick]
    found: dict[str, Any] = {}
    with ChaosServer() as server:
        urls = {name: server.base_url(name) for name in ("openai", "anthropic", "gemini")}
        setup = overhead.setup(quick).with_urls(urls)
        for system in MEMORY_SYSTEMS:
            started = time.monotonic()
            result = one_shot(
                ["memory", system, setup.to_json(), ",".join(map(str, marks))], limit=1800.0
            )
            rss = {int(k): v for k, v in result["rss_at"].items()}
            low, before, high = marks[0], marks[-2], marks[-1]
            found[system] = {
                "rss_mb": {str(k): round(v, 1) for k, v in rss.items()},
                "bytes_per_call": (rss[high] - rss[low]) * 2**20 / (high - low),
                "bytes_per_call_late": (rss[high] - rss[before]) * 2**20 / (high - before),
                "failed": result["failed"],
            }
            _log(f"  memory {system}: {found[system]} in {time.monotonic() - started:.0f} s")
    return found


def _fmt(value: float | None, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def render(results: dict[str, Any]) -> list[str]:
    rounds = results["rounds"]
    meta = results["meta"]
    lines = [
        "# Overhead against the floors",
        "",
        f"Run {meta['date']} ({'quick, ' if meta['quick'] else ''}{len(rounds)} interleaved "
        f"rounds, {meta['duration_s']} s) on {meta['cpu']}, {meta['cores']} cores, "
        f"Python {meta['python']}; other processes used {meta['foreign_cores']:.2f} cores "
        "on average meanwhile"
        + (" (**a loaded machine: read the ratios, not the µs**)." if meta["loaded"] else "."),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        "Medians over rounds. Sync calls run on the SDK's default sync transport (httpx) in "
        "every system; async calls on the transport the row names.",
        "",
        "| system | sync µs/call | async µs/call | calls/s @100 | client CPU µs/call @100 |",
        "|---|---:|---:|---:|---:|",
    ]
    for system in results["systems"]:
        values = [
            median(r[system].get(key) for r in rounds)
            for key in ("seq_us", "aseq_us", "conc_rps", "conc_cpu_us")
        ]
        cells = [_fmt(v, "{:,.0f}") for v in values]
        lines.append(f"| {LABELS[system]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Ratios (each round's, then the median)",
        "",
        f"Targets: sequential ≤ {SEQ_TARGET:.2f}x the floor's µs per call, concurrency 100 "
        f"≥ {CONC_TARGET:.2f}x its calls per second.",
        "",
        "| pair | sync sequential | async sequential | calls/s @100 | targets met |",
        "|---|---:|---:|---:|:---:|",
    ]
    for system, floor, label, targeted in PAIRS:
        figures = results["ratios"][f"{system}/{floor}"]
        seq, aseq, conc = (figures[key] for key, _ in _MODES)
        met = "—"
        if targeted and None not in (seq, aseq, conc):
            ok = max(seq or 0, aseq or 0) <= SEQ_TARGET and (conc or 0) >= CONC_TARGET
            met = "yes" if ok else "**no**"
        lines.append(
            f"| {label} | {_fmt(seq, '{:.2f}x')} | {_fmt(aseq, '{:.2f}x')} | "
            f"{_fmt(conc, '{:.2f}x')} | {met} |"
        )
    memory = results.get("memory")
    if memory:
        marks = MARKS[bool(meta["quick"])]
        low, before, high = marks[0], marks[-2], marks[-1]
        lines += [
            "",
            "## Memory: resident set after "
            + ", ".join(f"{m:,}" for m in marks)
            + " async calls (100 in flight)",
            "",
            "The engine keeps a minute of admissions per route (its snapshots count them), so "
            "its resident set grows until a minute of calls is held (at these rates, between "
            "50,000 and 100,000 calls), then stays flat.",
            "",
            "| system | "
            + " | ".join(f"RSS @{m:,} (MB)" for m in marks)
            + f" | bytes per call {low:,}→{high:,} | bytes per call {before:,}→{high:,} |",
            "|---|" + "---:|" * (len(marks) + 2),
        ]
        for system, found in memory.items():
            rss = found["rss_mb"]
            lines.append(
                f"| {LABELS[system]} | "
                + " | ".join(f"{rss[str(m)]:.1f}" for m in marks)
                + f" | {found['bytes_per_call']:.1f} | {found['bytes_per_call_late']:.1f} |"
            )
    failed = {s: sum(r[s].get("failed", 0) for r in rounds) for s in results["systems"]}
    if any(failed.values()):
        lines += ["", "Failed calls: " + ", ".join(f"{s} {n}" for s, n in failed.items() if n)]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, 2 rounds")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--no-memory", action="store_true", help="skip the RSS runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {sorted(unknown)}")

    started = time.monotonic()
    busy, mine = _cpu_seconds()
    with RedisServer() as redis:
        os.environ[REDIS_URL_VARIABLE] = f"redis://127.0.0.1:{redis.port}/0"
        _log(f"overhead rounds: {', '.join(systems)}")
        rounds = run_interleaved(overhead, systems, args.quick)
    memory = {} if args.no_memory else _memory(args.quick)
    busy_after, mine_after = _cpu_seconds()
    elapsed = time.monotonic() - started
    foreign = max(0.0, ((busy_after - busy) - (mine_after - mine)) / elapsed)
    results: dict[str, Any] = {
        "meta": {
            **_machine(),
            "quick": args.quick,
            "duration_s": round(elapsed),
            "foreign_cores": round(foreign, 2),
            "loaded": foreign > 0.2,
        },
        "systems": systems,
        "rounds": rounds,
        "ratios": ratios(rounds),
        "memory": memory,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "floors.json").write_text(json.dumps(results, indent=1) + "\n")
    path = args.out / "floors.md"
    path.write_text("\n".join(render(results)) + "\n")
    _log(path.read_text())


if __name__ == "__main__":
    main()
