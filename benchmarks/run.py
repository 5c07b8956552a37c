"""Run the benchmark: ``python -m benchmarks.run [--quick] [--reps N] [--scenarios ...]``.

Every (scenario, system, repetition) gets a fresh chaos server and a fresh worker process.
The order of the systems rotates from one repetition to the next, so no system always runs
first (or last) on a warm machine. Runs paced by the clock rather than the CPU may run side
by side (each scenario says which: ``SIDE_BY_SIDE``); the others run one at a time. Ratios
to the raw SDK are taken within each repetition; the report shows medians over repetitions.

Raw figures go to ``results/latest.json``; ``report.py`` turns them into ``latest.md`` and
the plots.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from resilient_llm.testing.chaos import ChaosServer

from . import report
from .harness import ROOT, cold_start, run_interleaved, run_once
from .scenarios import SCENARIOS, Scenario
from .stats import median
from .systems import PEERS, SYSTEMS

__all__ = ["main"]

RESULTS = ROOT / "benchmarks" / "results"
PACKAGES = (
    "resilient-llm",
    "openai",
    "anthropic",
    "google-genai",
    "httpx2",
    "aiohttp",
    "litellm",
    "langchain-core",
    "langchain-openai",
    "langchain-anthropic",
    "langchain-google-genai",
)


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024**2:.0f} GiB"
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def _cpu_seconds() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds of this run's processes).

    The second counts this process and its finished workers, so between two readings taken
    while no worker runs, the difference of the two is what other processes used.
    """
    machine = psutil.cpu_times()
    busy = sum(
        getattr(machine, name, 0.0)
        for name in ("user", "nice", "system", "irq", "softirq", "steal")
    )
    own = os.times()
    return busy, own.user + own.system + own.children_user + own.children_system


def _log(message: str) -> None:
    print(message, flush=True)


def _cold(systems: list[str], quick: bool) -> dict[str, dict[str, float | None]]:
    """Import time and cold first reply, median of fresh processes per system."""
    scenario = SCENARIOS["overhead"]
    processes = 1 if quick else 3
    figures: dict[str, dict[str, float | None]] = {}
    with ChaosServer() as server:
        urls = {name: server.base_url(name) for name in ("openai", "anthropic", "gemini")}
        setup = scenario.setup(quick)
        for system in systems:
            # The first process compiles bytecode and fills the page cache: not counted.
            cold_start(system, setup, urls)
            runs = [cold_start(system, setup, urls) for _ in range(processes)]
            figures[system] = {
                "import_ms": median(1000 * r["import_s"] for r in runs),
                "cold_ms": median(1000 * r["cold_s"] for r in runs),
            }
            _log(f"  cold {system}: {figures[system]}")
    return figures


def _ratios(rep: dict[str, dict[str, Any]]) -> None:
    raw = rep.get("raw")
    if raw is None:
        return
    for metrics in rep.values():
        metrics["seq_ratio"] = metrics["seq_us"] / raw["seq_us"]
        metrics["conc_ratio"] = raw["conc_rps"] / metrics["conc_rps"]


def _batches(scenario: Scenario, systems: list[str], reps: int) -> list[list[tuple[int, str]]]:
    """The (repetition, system) runs, grouped into batches that run side by side.

    Systems a scenario names in ``SIDE_BY_SIDE`` share batches (one per repetition, or one
    for all of them with ``SPREAD_REPS``); every other run is a batch of its own. The order
    of the systems rotates from one repetition to the next.
    """
    jobs = [
        (rep, system)
        for rep in range(reps)
        for system in systems[rep % len(systems) :] + systems[: rep % len(systems)]
    ]
    together = [job for job in jobs if job[1] in scenario.SIDE_BY_SIDE]
    if scenario.SPREAD_REPS:
        batches = [together]
    else:
        batches = [[job for job in together if job[0] == rep] for rep in range(reps)]
    return [batch for batch in batches if batch] + [
        [job] for job in jobs if job[1] not in scenario.SIDE_BY_SIDE
    ]


def _runs(
    scenario: Scenario, systems: list[str], reps: int, quick: bool
) -> list[dict[str, dict[str, Any]]]:
    """Every repetition's figures per system. A batch's runs start their load together,
    behind one barrier, so that none begins while another is still importing."""
    runs: list[dict[str, dict[str, Any]]] = [{} for _ in range(reps)]
    for batch in _batches(scenario, systems, reps):
        barrier = threading.Barrier(len(batch))

        def one(job: tuple[int, str], barrier: threading.Barrier = barrier) -> None:
            rep, system = job
            started = time.monotonic()
            try:
                metrics, _ = run_once(
                    scenario, system, quick, ready=lambda: barrier.wait(timeout=300)
                )
            except BaseException:
                barrier.abort()  # the others must not wait for a worker that is gone
                raise
            runs[rep][system] = metrics
            _log(f"  {scenario.NAME} #{rep + 1} {system}: {time.monotonic() - started:.0f} s")

        with ThreadPoolExecutor(max_workers=len(batch)) as pool:
            list(pool.map(one, batch))
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one repetition")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, or 1 with --quick)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--systems", default=",".join(PEERS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    reps = args.reps or (1 if args.quick else 3)
    systems = [s for s in args.systems.split(",") if s]
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(systems) - set(SYSTEMS) | set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown names: {sorted(unknown)}")

    started = time.monotonic()
    results: dict[str, Any] = {
        "meta": {**_machine(), "quick": args.quick, "reps": reps},
        "systems": systems,
        "scenarios": {},
    }
    for name in scenarios:
        scenario = SCENARIOS[name]
        _log(f"{scenario.TITLE}")
        busy, mine, wall = *_cpu_seconds(), time.monotonic()
        cold = _cold(systems, args.quick) if name == "overhead" else {}
        if scenario.INTERLEAVED:
            runs = run_interleaved(scenario, systems, args.quick)
        else:
            runs = _runs(scenario, systems, reps, args.quick)
        busy_after, mine_after = _cpu_seconds()
        # Other people's work on the machine skews timings: the report says how much there was.
        foreign = ((busy_after - busy) - (mine_after - mine)) / (time.monotonic() - wall)
        results["meta"].setdefault("foreign_cores", {})[name] = round(max(0.0, foreign), 2)
        for rep, figures in enumerate(runs):
            if name == "overhead":
                _ratios(figures)
                for system, metrics in figures.items():
                    metrics.update(cold[system])
            if rep:
                # The plots draw the first run; the others keep only their figures.
                for metrics in figures.values():
                    metrics.pop("series", None)
        results["scenarios"][name] = {s: [run[s] for run in runs] for s in systems}
    results["meta"]["duration_s"] = round(time.monotonic() - started)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    report.render(results, args.out)
    _log(f"wrote {args.out / 'latest.md'} in {results['meta']['duration_s']} s")


if __name__ == "__main__":
    main()
