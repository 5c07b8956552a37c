"""Outage overshoot: how far processes sharing one quota in Redis go past it when Redis is lost.

``PROCESSES`` worker processes (each one engine over ``RedisState`` on one prefix, with
``CONCURRENCY`` tasks calling ``achat`` in a loop) share a quota of ``QUOTA`` requests per
``WINDOW`` s on one chaos-server route, which enforces the same quota (a 429 past it). After
``KILL_AT`` s Redis is SIGKILLed, and restarted empty ``DOWN`` s later; the run goes on to
``DURATION`` s so every process is back on Redis for a while. The chaos server's request log,
the one place that sees every process's requests, gives the most requests that reached the
provider in any ``WINDOW`` s, against the quota, and the provider's 429s.

``python -m benchmarks.redis_faults [--quick] [--label TEXT]`` writes the section ``TEXT`` of
``benchmarks/results/redis_faults.md`` and ``redis_faults.json``, keeping the other sections.
For the figure of an older version, run it with ``PYTHONPATH`` pointing at that tree's
``core`` (the workers inherit the environment). Needs ``redis-server`` on the PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from resilient_llm.testing.chaos import ChaosServer, Plan

from .labelled import replace_entry, replace_section
from .loopback import guard
from .redis_server import RedisServer

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
PROCESSES, CONCURRENCY, QUOTA, WINDOW = 4, 8, 60, 5.0
# The engine's window is half a second longer than the provider's, as the README advises:
# a request admitted at ``a`` reaches the provider a little later.
MARGIN = 0.5
KILL_AT, DOWN, DURATION = 6.0, 3.0, 22.0
CALL_TIMEOUT, LATENCY = 2.0, 0.02
ROUTE = "openai-faults"


@dataclass
class Outcome:
    scenario: str
    requests: int
    worst_window: int
    worst_window_at: float
    worst_before_kill: int
    refused_429: int
    answered: int
    failed: int
    state_down: int
    state_restored: int


def worst_window(times: Sequence[float], width: float) -> tuple[int, float]:
    """The most of ``times`` in any ``[s, s + width)``, and the ``s`` it starts at."""
    ordered = sorted(times)
    best, start, first = 0, ordered[0] if ordered else 0.0, 0
    for last, at in enumerate(ordered):
        while ordered[first] + width <= at:
            first += 1
        if last - first + 1 > best:
            best, start = last - first + 1, ordered[first]
    return best, start


# ---------------------------------------------------------------------- a worker process


async def _work(config: dict[str, Any]) -> dict[str, Any]:
    from resilient_llm import Provider, RateLimit, ResilientLLM, ResilientLLMError, RetryPolicy
    from resilient_llm.events import Event, StateDown, StateRestored
    from resilient_llm.state.redis import RedisState

    events: list[Event] = []
    state = RedisState(config["redis"], prefix=config["prefix"])
    llm = ResilientLLM(
        [
            Provider(
                "openai",
                "chaos-model",
                name=ROUTE,
                base_url=config["base_url"],
                api_key="test-key",
                rate_limit=RateLimit(requests_per_minute=QUOTA, window=WINDOW + MARGIN),
            )
        ],
        state=state,
        retry=RetryPolicy(max_retries=0),
        timeout=CALL_TIMEOUT,
        on_event=events.append,
    )
    answered = failed = 0
    loop = asyncio.get_running_loop()
    await llm.achat("warm up")  # the SDK's client and connection, before the clock starts
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    until = float((await loop.run_in_executor(None, sys.stdin.readline)).split()[1])

    async def task() -> None:
        nonlocal answered, failed
        while time.monotonic() < until:
            try:
                await llm.achat("What is the capital of France?")
                answered += 1
            except ResilientLLMError:
                failed += 1
                await asyncio.sleep(0.05)  # refused at once: no spinning on the store

    await asyncio.gather(*(task() for _ in range(CONCURRENCY)))
    llm.close()
    await state.aclose()
    state.close()
    return {
        "answered": answered,
        "failed": failed,
        "state_down": sum(isinstance(e, StateDown) for e in events),
        "state_restored": sum(isinstance(e, StateRestored) for e in events),
    }


def child(config_json: str) -> None:
    guard()
    result = asyncio.run(_work(json.loads(config_json)))
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------- the run


def run(kill_at: float, down: float, duration: float) -> Outcome:
    with ChaosServer() as chaos, RedisServer() as redis_server:
        chaos.set_plan(ROUTE, Plan(rpm=QUOTA, quota_window=WINDOW, latency=LATENCY))
        config = {
            "redis": f"redis://127.0.0.1:{redis_server.port}/0",
            "prefix": f"faults{os.getpid()}",
            "base_url": chaos.base_url(ROUTE),
        }
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.redis_faults", "--child", json.dumps(config)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        try:
            for worker in workers:
                assert worker.stdout is not None
                if worker.stdout.readline().strip() != "READY":
                    raise RuntimeError("a worker did not start")
            chaos.clear_log()
            began = time.monotonic()
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(f"GO {began + duration}\n")
                worker.stdin.flush()
            time.sleep(kill_at)
            killed = chaos.log[-1].at if chaos.log else 0.0
            redis_server.kill()
            time.sleep(down)
            redis_server.restart()
            results = []
            for worker in workers:
                assert worker.stdout is not None
                line = worker.stdout.readline()
                if not line.startswith("RESULT "):
                    raise RuntimeError(f"a worker failed: {line!r}")
                results.append(json.loads(line[len("RESULT ") :]))
        finally:
            for worker in workers:
                worker.wait(timeout=60)
        log = [r for r in chaos.log if r.provider == ROUTE]
    times = [r.at for r in log]
    worst, worst_at = worst_window(times, WINDOW)
    before, _ = worst_window([t for t in times if t < killed], WINDOW)
    return Outcome(
        scenario=(
            f"{PROCESSES} processes x {CONCURRENCY} tasks, quota {QUOTA}/{WINDOW:g} s "
            f"(engine: {WINDOW + MARGIN:g} s), "
            f"Redis killed at {kill_at:g} s for {down:g} s (restarted empty), {duration:g} s"
        ),
        requests=len(log),
        worst_window=worst,
        worst_window_at=round(worst_at - (killed if killed else 0.0), 2),
        worst_before_kill=before,
        refused_429=sum(1 for r in log if r.status == 429),
        answered=sum(r["answered"] for r in results),
        failed=sum(r["failed"] for r in results),
        state_down=sum(r["state_down"] for r in results),
        state_restored=sum(r["state_restored"] for r in results),
    )


# ---------------------------------------------------------------------- the report

_PREAMBLE = """# Outage overshoot: Redis lost under load

Worker processes share one route's quota through `RedisState`; Redis is SIGKILLed under load
and restarted empty (`benchmarks/redis_faults.py`). The figure is the most requests that
reached the provider in any window of the quota's length (the chaos server's log), against
the quota; "at" is where that window starts, in seconds from the kill. Each section is one
run of `python -m benchmarks.redis_faults --label "<section>"`; re-running a label replaces
its section.
"""


def _section(label: str, outcomes: Sequence[Outcome]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"## {label}",
        "",
        f"{when}; Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"{outcomes[0].scenario}; {len(outcomes)} run(s), one row each.",
        "",
        "| worst window | quota | at (s from kill) | worst before the kill | requests "
        "| provider 429s | answered | failed | StateDown | StateRestored |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.worst_window} | {QUOTA} | {o.worst_window_at:+.2f} | {o.worst_before_kill} "
            f"| {o.requests} | {o.refused_429} | {o.answered} | {o.failed} | {o.state_down} "
            f"| {o.state_restored} |"
        )
    return "\n".join(lines)


def write(label: str, outcomes: Sequence[Outcome]) -> None:
    replace_section(RESULTS / "redis_faults.md", _PREAMBLE, label, _section(label, outcomes))
    replace_entry(
        RESULTS / "redis_faults.json",
        label,
        {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(),
            "quota": QUOTA,
            "window": WINDOW,
            "runs": [asdict(o) for o in outcomes],
        },
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_faults", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one run, not three")
    parser.add_argument("--label", default="latest", help="the results section to (re)write")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child)
        return
    guard()
    outcomes = []
    for _ in range(1 if args.quick else 3):
        outcome = run(KILL_AT, DOWN, DURATION)
        print(
            f"{outcome.scenario}: worst {WINDOW:g} s window {outcome.worst_window} requests "
            f"(quota {QUOTA}), {outcome.refused_429} provider 429s",
            flush=True,
        )
        outcomes.append(outcome)
    write(args.label, outcomes)
    print(f"wrote {RESULTS / 'redis_faults.md'} [{args.label}]", flush=True)


if __name__ == "__main__":
    main()
