"""One measured run: a fresh chaos server here, one worker process for the system.

The server runs in this (otherwise idle) process and the system in its own, so on a
two-core machine each has a core and neither competes for the other's GIL. Between the
worker's READY and GO every plan is set again, which restarts the providers' scripts, RNGs,
quota windows and outage clocks, and the log is cleared: warm-up calls leave no trace, and
every system meets the same plans from the same seeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from resilient_llm.testing.chaos import ChaosServer, Plan

from .scenarios import Scenario
from .spec import Hit, Setup

__all__ = ["ROOT", "WorkerFailed", "cold_start", "one_shot", "run_interleaved", "run_once"]

ROOT = Path(__file__).resolve().parent.parent


class WorkerFailed(RuntimeError):
    pass


class _Stamp:
    """``time.monotonic`` that remembers its last reading, to learn the server's origin and
    each plan's epoch on the same clock the workers read."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self) -> float:
        self.last = time.monotonic()
        return self.last


class _Worker:
    def __init__(self, args: list[str], limit: float) -> None:
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        self._stderr: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        # A hung system must not hang the benchmark: the watchdog ends this worker only.
        self._watchdog = threading.Timer(limit, self.proc.kill)
        self._watchdog.daemon = True
        self._watchdog.start()

    def expect(self, tag: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(tag):
                return line[len(tag) :].strip()
        self.proc.wait()
        self._stderr.seek(0)
        tail = self._stderr.read()[-3000:]
        raise WorkerFailed(f"worker exited {self.proc.returncode} before {tag}:\n{tail}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        self._watchdog.cancel()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._stderr.close()


def _counted(path: str) -> bool:
    # Token-counting endpoints are free bookkeeping, not chat calls.
    return "count" not in path.lower()


def run_once(
    scenario: Scenario,
    system: str,
    quick: bool,
    *,
    ready: Callable[[], object] = lambda: None,
    limit: float = 600.0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``system`` through ``scenario`` once; return (metrics, the worker's raw result).

    ``ready`` is called once the worker is ready and before GO: runs side by side pass a
    barrier, so that no system starts its load while another is still importing.
    """
    plans = {name: Plan.from_dict(fields) for name, fields in scenario.plans(quick).items()}
    stamp = _Stamp()
    with ChaosServer(plans, clock=stamp) as server:
        origin = stamp.last
        urls = {name: server.base_url(name) for name in plans}
        setup = scenario.setup(quick).with_urls(urls)
        worker = _Worker(
            ["run", scenario.NAME, system, setup.to_json(), "1" if quick else "0"], limit
        )
        try:
            worker.expect("READY")
            ready()
            go = 0.0
            for name, plan in plans.items():
                server.set_plan(name, plan)
                go = go or stamp.last
            server.clear_log()
            worker.send(f"GO {go!r}")
            result: dict[str, Any] = json.loads(worker.expect("RESULT"))
        finally:
            worker.close()
        hits = [
            Hit(r.provider, r.status, r.fault, r.at + origin - go, r.tokens)
            for r in server.log
            if _counted(r.path)
        ]
    metrics = scenario.measure(result, hits, quick)
    metrics["blocked"] = len(result.get("blocked", []))
    return metrics, result


def run_interleaved(
    scenario: Any, systems: list[str], quick: bool, limit: float = 1800.0
) -> list[dict[str, dict[str, Any]]]:
    """Run ``systems`` through ``scenario.schedule(quick)`` taking turns; one dict of
    figures per system per round.

    Every system has its own fresh chaos server and worker, all up at once; in each round
    every step goes to each system in turn (the order rotating from round to round), so a
    burst of load from elsewhere lands on neighbouring slices of every system.
    """
    plans = {name: Plan.from_dict(fields) for name, fields in scenario.plans(quick).items()}
    rounds = scenario.schedule(quick)
    servers: dict[str, ChaosServer] = {}
    workers: dict[str, _Worker] = {}
    slices: list[dict[str, dict[str, list[dict[str, Any]]]]] = [
        {s: {} for s in systems} for _ in rounds
    ]
    try:
        for system in systems:
            server = servers[system] = ChaosServer(plans).start()
            setup = scenario.setup(quick).with_urls({n: server.base_url(n) for n in plans})
            workers[system] = _Worker(
                ["run", scenario.NAME, system, setup.to_json(), "1" if quick else "0"], limit
            )
        for system in systems:
            workers[system].expect("READY")
            servers[system].clear_log()
        for index, steps in enumerate(rounds):
            order = systems[index % len(systems) :] + systems[: index % len(systems)]
            for spec in steps:
                for system in order:
                    workers[system].send(f"STEP {json.dumps(spec)}")
                    done = json.loads(workers[system].expect("DONE"))
                    slices[index][system].setdefault(spec["mode"], []).append(done)
        finals = {}
        for system in systems:
            workers[system].send("END")
            finals[system] = json.loads(workers[system].expect("RESULT"))
        calls = {s: len([r for r in servers[s].log if _counted(r.path)]) for s in systems}
    finally:
        for worker in workers.values():
            worker.close()
        for server in servers.values():
            server.stop()
    runs: list[dict[str, dict[str, Any]]] = []
    for per_system in slices:
        figures = {}
        for system, modes in per_system.items():
            result: dict[str, Any] = {"rss_mb": finals[system]["rss_mb"]}
            for mode, parts in modes.items():
                result[f"{mode}_n"] = sum(p["n"] for p in parts)
                result[f"{mode}_s"] = sum(p["s"] for p in parts)
                result[f"{mode}_cpu_s"] = sum(p["cpu_s"] for p in parts)
            result["failed"] = sum(p["failed"] for parts in modes.values() for p in parts)
            figures[system] = scenario.measure(result, [], quick)
            figures[system]["upstream_calls"] = calls[system]
            figures[system]["blocked"] = len(finals[system].get("blocked", []))
        runs.append(figures)
    return runs


def one_shot(args: list[str], limit: float = 300.0) -> Any:
    """Run ``python -m benchmarks.worker ARGS`` (no GO handshake); return its result."""
    worker = _Worker(args, limit)
    try:
        return json.loads(worker.expect("RESULT"))
    finally:
        worker.close()


def cold_start(system: str, setup: Setup, urls: dict[str, str]) -> Any:
    """Import time and first reply of ``system`` in a fresh process."""
    return one_shot(["cold", system, setup.with_urls(urls).to_json()], limit=120.0)
