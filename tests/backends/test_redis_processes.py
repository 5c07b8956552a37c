"""Several application processes sharing one Redis: one quota, one breaker, one outage.

Each worker is a real process (``tests/backends/_worker.py``) running concurrent async
calls through the official SDK against the chaos server, with its route state in a real
``redis-server``. What the processes did together is read from the chaos server's request
log, the one place that sees every request from every process.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from resilient_llm import estimate_tokens
from resilient_llm.messages import ChatRequest, Message
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan, RequestRecord

from .conftest import RedisServer, redis_server_binary

ROOT = Path(__file__).resolve().parents[2]
_TAGS = itertools.count()
REPLY_TIMEOUT = 45.0  # no command may take longer; a hung worker fails the test


class Worker:
    """One ``_worker`` process; :meth:`ask` sends a command and waits for its reply."""

    def __init__(self, log: Path) -> None:
        self._stderr = log.open("w")
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.backends._worker"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.events: list[dict[str, Any]] = []

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def reply(self, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"worker gave no reply in {timeout} s: {self.stderr()}") from None
        if not line:
            raise AssertionError(f"worker exited: {self.stderr()}")
        payload: dict[str, Any] = json.loads(line)
        self.events += payload.pop("events")
        return payload

    def ask(self, command: dict[str, Any], timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        self.send(command)
        return self.reply(timeout)

    def stderr(self) -> str:
        self._stderr.flush()
        return self.log.read_text()[-3000:]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def calls(self, command: dict[str, Any]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = self.ask({"cmd": "calls", **command})["results"]
        return results

    def stop(self) -> None:
        """Ask it to exit (and kill it if it does not)."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.send({"cmd": "exit"})

    def wait(self) -> None:
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._stderr.close()


class Fleet:
    """Worker processes, started when first needed and kept for the module (each test
    sets them up afresh): starting a process that imports an SDK takes seconds."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.workers: list[Worker] = []

    def setup(self, config: dict[str, Any], count: int = 4) -> list[Worker]:
        """Build the engines of ``count`` workers from ``config``; those workers."""
        started = [
            Worker(self.directory / f"worker-{i}.log") for i in range(len(self.workers), count)
        ]
        for worker in started:
            assert worker.reply(timeout=60.0).get("ready")
        self.workers += started
        chosen = self.workers[:count]
        for worker in chosen:
            worker.events.clear()
            worker.send({"cmd": "setup", "config": config})
        for worker in chosen:
            worker.reply()
        return chosen

    def everyone(
        self, workers: Sequence[Worker], command: dict[str, Any]
    ) -> list[list[dict[str, Any]]]:
        """Send ``command`` to every worker at once; each worker's results."""
        for worker in workers:
            worker.send({"cmd": "calls", **command})
        return [worker.reply()["results"] for worker in workers]

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            worker.wait()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    redis_server_binary()  # skip (or fail in CI) before starting anything
    workers = Fleet(tmp_path_factory.mktemp("workers"))
    yield workers
    workers.close()


@pytest.fixture(scope="module")
def chaos() -> Iterator[ChaosServer]:
    with ChaosServer() as server:
        yield server


def _config(
    redis_url: str, prefix: str, chaos: ChaosServer, names: dict[str, str], **extra: Any
) -> dict[str, Any]:
    """A worker configuration: providers by role, each on its own chaos prefix."""
    providers = [
        {"kind": "openai", "name": name, "base_url": chaos.base_url(name)}
        for name in names.values()
    ]
    return {"redis": redis_url, "prefix": prefix, "providers": providers, **extra}


def _names(*roles: str) -> dict[str, str]:
    tag = next(_TAGS)
    return {role: f"openai-p{os.getpid()}x{tag}-{role}" for role in roles}


def _mine(chaos: ChaosServer, name: str) -> list[RequestRecord]:
    return sorted((r for r in chaos.log if r.provider == name), key=lambda r: r.at)


def _worst_window(records: Sequence[RequestRecord], window: float) -> tuple[int, int]:
    """The most requests, and the most quota tokens, that arrived in any ``[s, s + w)``.

    Windows starting at an arrival are enough: any window slides right to its first
    arrival without losing one.
    """
    most_requests = most_tokens = 0
    times = [r.at for r in records]
    for i, start in enumerate(times):
        inside = [r for r in records[i:] if r.at < start + window]
        most_requests = max(most_requests, len(inside))
        most_tokens = max(most_tokens, sum(r.tokens for r in inside))
    return most_requests, most_tokens


# --------------------------------------------------------------------------- one quota


# The limiter counts a request from its admission, the provider from its arrival, and the
# time between the two is the machine's to decide (25 calls per process share one loop; on
# a loaded machine a call may wait seconds before its bytes leave). So the windows here are
# long enough that the whole burst falls inside one: the claim is then a count, which no
# scheduling can change. One window's worth of the 100 calls is admitted across the four
# processes and answered; every other call is refused by the shared limiter (its wait
# would pass its deadline) without a request. With a quota per process, every call would
# have gone out.
PROVIDER_WINDOW = 60.0
WINDOW = PROVIDER_WINDOW + 0.5
RPM = 40
PROMPT = "Please echo these words back: alpha beta gamma delta epsilon."
MAX_TOKENS = 4
# The chaos provider charges ceil(chars / 4) of the message text plus max_tokens, and
# answers "Echo: <prompt>" cut to max_tokens, so its usage report is exactly that charge:
# the limiter settles every call to what the provider counted, not to less.
CHARGE = -(-len(PROMPT) // 4) + MAX_TOKENS
PER_WINDOW = 35
TPM = PER_WINDOW * CHARGE  # binds before RPM: both limits are exercised


@pytest.mark.timeout(120)
def test_four_processes_share_one_quota_without_overshoot(
    redis_url: str, prefix: str, chaos: ChaosServer, fleet: Fleet
) -> None:
    """4 processes x 25 concurrent calls share one RPM/TPM quota: exactly one window's
    worth (by our estimate) reaches the provider, which refuses none; the rest are refused
    before sending."""
    request = ChatRequest(messages=(Message("user", PROMPT),), max_tokens=MAX_TOKENS)
    estimate = estimate_tokens(request, model="chaos-model")
    # Until the reply the limiter holds the estimate: it must not be below the charge.
    assert estimate >= CHARGE, (estimate, CHARGE)

    names = _names("quota")
    name = names["quota"]
    chaos.set_plan(name, Plan(rpm=RPM, tpm=TPM, quota_window=PROVIDER_WINDOW))
    limit = {"requests_per_minute": RPM, "tokens_per_minute": TPM, "window": WINDOW}
    config = _config(
        redis_url, prefix, chaos, names, rate_limit=limit, engines={"main": [name]}, timeout=10.0
    )
    workers = fleet.setup(config)
    results = fleet.everyone(workers, {"n": 25, "prompt": PROMPT, "max_tokens": MAX_TOKENS})

    flat = [r for batch in results for r in batch]
    answered = [r for r in flat if r["ok"]]
    refused = [r for r in flat if not r["ok"]]
    records = _mine(chaos, name)
    print(
        f"\nquota: {len(answered)} answered, {len(refused)} refused before sending "
        f"({sorted({r['error'] for r in refused})}); the provider saw {len(records)}"
    )
    # An OpenAI route's reservation never settles below its estimate (OpenAI counts
    # max_tokens up front), so the window holds TPM // estimate calls, whatever the order.
    admitted = TPM // estimate
    assert len(answered) == admitted
    assert {r["usage"] for r in answered} == {CHARGE}
    assert {r["error"] for r in refused} <= {"DeadlineExceeded", "RateLimited"}
    assert [(r.status, r.fault, r.tokens) for r in records] == [(200, "ok", CHARGE)] * admitted
    # All four processes took part in the one window.
    assert sum(1 for batch in results if any(r["ok"] for r in batch)) >= 2


# --------------------------------------------------------------------------- one breaker


# Long enough for the steps that must happen inside it, on a loaded machine too.
COOLDOWN = 6.0
PROBES = 3


def _release_when(chaos: ChaosServer, name: str, ready: Callable[[], bool]) -> None:
    """Wait for ``ready()`` (a minute at most), then end the pauses ``name``'s requests
    are in, if any."""
    deadline = time.monotonic() + 60
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.005)
    chaos.release(name)


def _breaker_changes(worker: Worker) -> list[tuple[str, str, str]]:
    return [(e["old"], e["new"], e["reason"]) for e in worker.of("BreakerStateChanged")]


@pytest.mark.timeout(120)
def test_one_process_opens_the_breaker_for_all_and_probes_are_shared(
    redis_url: str, prefix: str, chaos: ChaosServer, fleet: Fleet
) -> None:
    names = _names("primary", "fallback")
    primary, fallback = names["primary"], names["fallback"]
    failing_kinds: dict[str, Any] = {"error_rate": 1.0, "error_kinds": ("server_error",)}
    chaos.set_plan(primary, Plan(**failing_kinds))
    chaos.set_plan(fallback, Plan())
    config = _config(
        redis_url,
        prefix,
        chaos,
        names,
        engines={"solo": [primary], "pair": [primary, fallback]},
        breaker={"failure_threshold": 3, "cooldown": COOLDOWN, "half_open_probes": PROBES},
        retry={"max_retries": 0},
        timeout=10.0,
    )
    workers = fleet.setup(config)
    a, *others = workers

    # Process A's three failures open the shared breaker.
    results = a.calls({"engine": "solo", "n": 3})
    assert [r["ok"] for r in results] == [False] * 3
    assert _breaker_changes(a) == [("closed", "open", "3 failures in 60s")]
    opened_at = a.of("BreakerStateChanged")[0]["at"]  # time.monotonic, as here
    assert len(_mine(chaos, primary)) == 3

    # Every other process skips the primary without a call: to the fallback, or CircuitOpen.
    for batch in fleet.everyone(others, {"engine": "pair", "n": 5}):
        assert {r.get("provider") for r in batch} == {fallback}
    for batch in fleet.everyone(others, {"engine": "solo", "n": 2}):
        assert {r.get("error") for r in batch} == {"CircuitOpen"}
    assert time.monotonic() < opened_at + COOLDOWN  # all of that inside the cooldown
    for worker in others:
        # Each of its two engines (two routes over the same keys) saw the change.
        assert set(_breaker_changes(worker)) == {("closed", "open", "by another process")}
    assert len(_mine(chaos, primary)) == 3

    # After the cooldown, 40 concurrent calls from 4 processes: exactly PROBES reach the
    # half-open primary (held there, failing, until every other call has failed over, so
    # every probe is still out while the others look); the probes' failure reopens it.
    held = Fault("server_error", delay=60)
    chaos.set_plan(primary, Plan(script=[held] * PROBES, **failing_kinds))
    time.sleep(max(0.0, opened_at + COOLDOWN + 0.05 - time.monotonic()))
    answered = len(_mine(chaos, fallback))
    releaser = threading.Thread(
        target=_release_when,
        args=(chaos, primary, lambda: len(_mine(chaos, fallback)) >= answered + 40 - PROBES),
    )
    releaser.start()
    results = [r for batch in fleet.everyone(workers, {"engine": "pair", "n": 10}) for r in batch]
    releaser.join()
    assert {r.get("provider") for r in results} == {fallback}
    probes = _mine(chaos, primary)[3:]
    assert len(probes) == PROBES
    everyone = [change for worker in workers for change in _breaker_changes(worker)]
    assert everyone.count(("half_open", "open", "probe failed")) == 1
    reopened_at = next(
        e["at"]
        for worker in workers
        for e in worker.of("BreakerStateChanged")
        if e["reason"] == "probe failed"
    )

    # Once the primary is healthy, the next probe closes the breaker for every process.
    chaos.set_plan(primary, Plan())
    time.sleep(max(0.0, reopened_at + COOLDOWN + 0.05 - time.monotonic()))
    fleet.everyone(workers, {"engine": "pair", "n": 10})
    for worker in workers:
        assert worker.calls({"engine": "solo", "n": 1})[0]["provider"] == primary
        snapshot = worker.ask({"cmd": "snapshot", "engine": "solo"})["snapshot"]
        assert snapshot[0]["breaker"]["state"] == "closed"
    everyone = [change for worker in workers for change in _breaker_changes(worker)]
    assert everyone.count(("half_open", "closed", "probe succeeded")) == 1
    print(f"\nbreaker: {len(probes)} probe(s) of {PROBES} allowed reached the primary")


# --------------------------------------------------------------------------- Redis dies


@pytest.mark.timeout(120)
def test_redis_killed_and_restarted_mid_run(
    own_redis: RedisServer, prefix: str, chaos: ChaosServer, fleet: Fleet
) -> None:
    """Two processes, each with 2 tasks making 6 calls in a row, paced by a shared limit of
    3 a second; Redis is SIGKILLed once 4 calls were answered and restarted once 8 more
    were. Every call is answered within its deadline, and each
    process says when it fell back and when it came back."""
    names = _names("steady")
    name = names["steady"]
    chaos.set_plan(name, Plan(latency=0.05))
    timeout = 15.0
    config = _config(
        own_redis.url,
        prefix,
        chaos,
        names,
        engines={"main": [name]},
        rate_limit={"requests_per_minute": 3, "window": 1.0},
        state={"retry_after": 0.5},
        timeout=timeout,
    )
    workers = fleet.setup(config, count=2)
    began = time.monotonic()
    for worker in workers:
        worker.send({"cmd": "calls", "n": 2, "repeat": 6})
    _release_when(chaos, name, lambda: len(_mine(chaos, name)) >= 4)
    own_redis.kill()
    killed = time.monotonic()
    # Some calls answered on the memory fallback before Redis comes back.
    _release_when(chaos, name, lambda: len(_mine(chaos, name)) >= 12)
    own_redis.restart()
    restarted = time.monotonic()
    results = [r for worker in workers for r in worker.reply()["results"]]
    finished = time.monotonic()

    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]][:3]
    assert len(results) == 24
    assert max(r["ended"] - r["started"] for r in results) < timeout
    for worker in workers:
        down, restored = worker.of("StateDown"), worker.of("StateRestored")
        assert [(e["error"], e["policy"]) for e in down] == [("ConnectionError", "fallback")]
        assert len(restored) == 1
        # A process notices when one of its Redis calls fails, which a busy machine may
        # delay past the restart; an event's moment is its call's, which may have begun
        # before the kill. What holds whatever the timing: it fell back, then came back,
        # once each, in that order.
        kinds = [e["type"] for e in worker.events if e["type"] in ("StateDown", "StateRestored")]
        assert kinds == ["StateDown", "StateRestored"]
        assert restored[0]["down_for"] > 0
    served = [r for r in _mine(chaos, name)]
    assert len(served) == 24
    late = [r for r in results if r["ended"] > restarted]
    assert late, "no call was left to run on the restarted Redis"
    print(
        f"\nredis kill: killed at +{killed - began:.2f}s, back at +{restarted - began:.2f}s, "
        f"run done at +{finished - began:.2f}s; {len(late)} calls finished after the restart"
    )


@pytest.mark.timeout(60)
def test_fail_closed_policy_refuses_while_redis_is_down(
    own_redis: RedisServer, prefix: str, chaos: ChaosServer, fleet: Fleet
) -> None:
    names = _names("closed")
    name = names["closed"]
    chaos.set_plan(name, Plan())
    config = _config(
        own_redis.url,
        prefix,
        chaos,
        names,
        engines={"main": [name]},
        state={"on_unavailable": "fail", "retry_after": 0.3},
        timeout=5.0,
    )
    (worker,) = fleet.setup(config, count=1)
    assert worker.calls({"n": 2})[0]["provider"] == name
    own_redis.kill()
    refused = worker.calls({"n": 3})
    assert {r.get("error") for r in refused} == {"StateUnavailable"}
    own_redis.restart()
    time.sleep(0.35)  # retry_after: the route tries Redis again only then
    assert {r.get("provider") for r in worker.calls({"n": 2})} == {name}
    assert [e["policy"] for e in worker.of("StateDown")] == ["fail"]
    assert len(worker.of("StateRestored")) == 1
    assert len(_mine(chaos, name)) == 4
