"""The whole fault matrix in one run: every chaos fault x primary family x call mode.

``tests/engine/test_faults_through_engine.py`` pins each fault's exact request sequence in
its own test. This test asks the cross-cutting questions of every cell at once, and prints
the matrix so a reader sees the engine's behaviour in one table:

- the call ends in a success or a typed ``ResilientLLMError`` within the deadline (+1 s);
- a stream that broke after its first chunk raised ``StreamInterrupted``, never "success";
- no call was answered twice: at most one complete 200 per call in the chaos log;
- every attempt the engine started reached the server exactly once (SDK retries are off);
- no ``AttemptStarted`` falls inside its route's pause window (``RoutePaused``) or while
  its breaker was open (``BreakerStateChanged``), on the engine's clock.

Each cell makes two calls with the fault in force for ever, so the second call shows
whether what the first one learnt (a pause, an open breaker) keeps it off the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Imported once so SDK import time never lands inside an attempt's budget.
import resilient_llm.providers.anthropic.adapter
import resilient_llm.providers.gemini.adapter
import resilient_llm.providers.openai.adapter  # noqa: F401
from resilient_llm import (
    BreakerPolicy,
    ChatChunk,
    FakeClock,
    Provider,
    ResilientLLM,
    ResilientLLMError,
    RetryPolicy,
    StreamInterrupted,
)
from resilient_llm.events import AttemptStarted, BreakerStateChanged, Event, RoutePaused
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan

from ..timing import cutting

QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."
KINDS = ("openai", "anthropic", "gemini")
MODES = ("chat", "achat", "stream", "astream")
STREAMS = ("stream", "astream")
FALLBACK = {"openai": "anthropic", "anthropic": "gemini", "gemini": "openai"}
TIMEOUT = 3.0  # the call's deadline
# "Within the deadline" tells a cut call (about TIMEOUT) from one the deadline failed to
# cut (a hang lasts 60 s): the margin is wide so that a busy machine never matters.
MARGIN = 10.0
ATTEMPT_TIMEOUT = 0.3  # the primary's own per-attempt timeout, for hang / slow cases (sync)
# Async cells with a hang or a slow first token run on fake time, cut by the test once the
# server holds the request (``cutting``): no real timeout races the machine there.
FAKE_TIMEOUT = 1000.0
FAKE_ATTEMPT_TIMEOUT = 30.0
HELD_STATUS = {"hang": 0, "slow_first_token": 200}
CALLS_PER_CELL = 2
RETRY = RetryPolicy(max_retries=1, base=0.01, cap=0.05)
BREAKER = BreakerPolicy(failure_threshold=2, cooldown=60)
FOREVER = 12  # scripted faults: more than any cell can use

# fault -> the primary's plan (None: a provider on a closed port), and whether it needs the
# per-attempt timeout.
FAULTS: dict[str, tuple[Plan | None, bool]] = {
    "rate_limit": (Plan(script=[Fault("rate_limit", retry_after=30)] * FOREVER), False),
    "server_error": (Plan(script=["server_error"] * FOREVER), False),
    "unavailable": (Plan(script=["unavailable"] * FOREVER), False),
    "overloaded": (Plan(script=["overloaded"] * FOREVER), False),
    "hang": (Plan(script=[Fault("hang", delay=60)] * FOREVER), True),
    "reset": (Plan(script=["reset"] * FOREVER), False),
    "malformed": (Plan(script=["malformed"] * FOREVER), False),
    "truncate": (Plan(script=["truncate"] * FOREVER), False),
    "stream_error": (Plan(script=["stream_error"] * FOREVER), False),
    "outage": (Plan(outages=[(0.0, 3600.0)]), False),
    "refused": (None, False),
    "slow_first_token": (Plan(script=[Fault("slow_first_token", delay=60)] * FOREVER), True),
}
# A log entry answered in full: a 200 that was not one of the broken-body faults (nor a
# held slow first token: see _check_cell).
BROKEN_200 = {"malformed", "truncate", "stream_error"}

_TAGS = itertools.count()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class CallOutcome:
    error: BaseException | None
    chunks: list[ChatChunk]
    text: str
    route: str | None
    elapsed: float
    attempts: dict[str, int]  # AttemptStarted per route during this call


@dataclass
class Cell:
    fault: str
    kind: str
    mode: str
    primary: str
    fallback: str
    calls: list[CallOutcome] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    clock: FakeClock | None = None
    log: dict[str, list[tuple[int, str, bool]]] = field(
        default_factory=dict
    )  # status, fault, stream

    def label(self) -> str:
        parts = []
        for call in self.calls:
            counts = f"{call.attempts.get(self.primary, 0)}+{call.attempts.get(self.fallback, 0)}"
            if call.error is None:
                where = "primary" if call.route == self.primary else self.fallback.split("-")[0]
                parts.append(f"ok→{where} {counts}")
            else:
                parts.append(f"{type(call.error).__name__} {counts}")
        return " | ".join(parts)


@pytest.fixture(scope="module")
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _run(llm: ResilientLLM, mode: str, runner: asyncio.Runner, chunks: list[ChatChunk]) -> str:
    if mode == "chat":
        reply = llm.chat(QUESTION)
        chunks.append(ChatChunk(delta=reply.content, provider=reply.provider))
        return reply.content
    if mode == "achat":
        reply = runner.run(llm.achat(QUESTION))
        chunks.append(ChatChunk(delta=reply.content, provider=reply.provider))
        return reply.content
    if mode == "stream":
        for chunk in llm.stream(QUESTION):
            chunks.append(chunk)
    else:

        async def drain() -> None:
            async for chunk in llm.astream(QUESTION):
                chunks.append(chunk)

        runner.run(drain())
    return "".join(c.delta for c in chunks)


def _cut(server: ChaosServer, cell: Cell) -> contextlib.AbstractContextManager[object]:
    """For a cell on fake time: cut each held request once the server holds it."""
    if cell.clock is None:
        return contextlib.nullcontext()
    status = HELD_STATUS[cell.fault]

    def count() -> int:
        return sum(
            1
            for r in server.log
            if r.provider == cell.primary and r.fault == cell.fault and r.status == status
        )

    seen = count()

    def held() -> int:
        return count() - seen

    return cutting(cell.clock, held)


def _intervals(events: list[Event], route: str) -> list[tuple[float, float, str]]:
    """Where ``route`` must not be attempted: pause windows and open-breaker intervals."""
    out = [
        (e.at, e.at + e.seconds, "paused")
        for e in events
        if isinstance(e, RoutePaused) and e.route == route
    ]
    changes = [e for e in events if isinstance(e, BreakerStateChanged) and e.route == route]
    for i, change in enumerate(changes):
        if change.new == "open":
            end = changes[i + 1].at if i + 1 < len(changes) else float("inf")
            out.append((change.at, end, "breaker open"))
    return out


def _attempt_timeout(timed: bool, holds: bool, clock: FakeClock | None) -> float | None:
    if not timed:
        return None
    if not holds:
        # A non-stream slow first token answers at once: a generous limit that only a
        # held reply would reach, never the time an async client takes to start.
        return 10.0
    return FAKE_ATTEMPT_TIMEOUT if clock else ATTEMPT_TIMEOUT


def _make_cell(server: ChaosServer, fault: str, kind: str, mode: str) -> tuple[Cell, ResilientLLM]:
    tag = f"m{next(_TAGS)}"
    plan, timed = FAULTS[fault]
    # Only where the fault holds the request: without a stream, a slow first token is a
    # prompt, complete answer.
    holds = fault == "hang" or (fault == "slow_first_token" and mode in STREAMS)
    clock = FakeClock() if holds and mode in ("achat", "astream") else None
    name = f"{kind}-{tag}-primary"
    fallback_name = f"{FALLBACK[kind]}-{tag}-fallback"
    if plan is None:
        base_url = f"http://127.0.0.1:{_closed_port()}/v1"
    else:
        server.set_plan(name, plan)
        base_url = server.base_url(name)
    server.set_plan(fallback_name, Plan())
    primary = Provider(
        kind,  # type: ignore[arg-type]
        "chaos-model",
        base_url=base_url,
        api_key="test-key",
        name=name,
        timeout=_attempt_timeout(timed, holds, clock),
    )
    fallback = Provider(
        FALLBACK[kind],  # type: ignore[arg-type]
        "chaos-model",
        base_url=server.base_url(fallback_name),
        api_key="test-key",
        name=fallback_name,
    )
    cell = Cell(fault, kind, mode, name, fallback_name, clock=clock)
    llm = ResilientLLM(
        [primary, fallback],
        retry=RETRY,
        breaker=BREAKER,
        timeout=FAKE_TIMEOUT if clock else TIMEOUT,
        clock=clock,
        jitter_seed=0,
        on_event=cell.events.append,
    )
    return cell, llm


def _check_cell(cell: Cell) -> list[str]:
    """Every violation of the cell's promises, as readable lines (empty: all kept)."""
    where = f"{cell.fault}/{cell.kind}/{cell.mode}"
    problems: list[str] = []
    for n, call in enumerate(cell.calls, 1):
        if call.elapsed > TIMEOUT + MARGIN:
            problems.append(f"{where} call {n}: took {call.elapsed:.2f}s > deadline + margin")
        if call.error is not None and not isinstance(call.error, ResilientLLMError):
            problems.append(f"{where} call {n}: untyped error {call.error!r}")
        if call.error is None and call.text != ANSWER:
            problems.append(f"{where} call {n}: returned {call.text!r} as a success")
        delivered = "".join(c.delta for c in call.chunks)
        if cell.mode in STREAMS and call.error is not None and delivered:
            if not isinstance(call.error, StreamInterrupted):
                problems.append(
                    f"{where} call {n}: failed after chunks {delivered!r} with "
                    f"{type(call.error).__name__}, not StreamInterrupted"
                )
            if len({c.provider for c in call.chunks}) != 1:
                problems.append(f"{where} call {n}: chunks from several routes")
    successes = [c for c in cell.calls if c.error is None]
    answered = [
        (name, status, fault)
        for name, entries in cell.log.items()
        for status, fault, stream in entries
        if status == 200
        and fault not in BROKEN_200
        # A slow first token holds a stream (also a whole reply read through one, when a
        # second route could answer); asked without a stream, it answers at once.
        and not (fault == "slow_first_token" and stream)
    ]
    if len(answered) != len(successes):
        problems.append(
            f"{where}: {len(successes)} successful call(s) but complete 200s {answered}"
        )
    attempts = {e.route: 0 for e in cell.events if isinstance(e, AttemptStarted)}
    for e in cell.events:
        if isinstance(e, AttemptStarted):
            attempts[e.route] += 1
    for route, count in attempts.items():
        logged = len(cell.log.get(route, []))
        refused = cell.fault == "refused" and route == cell.primary  # never reaches the server
        if not refused and logged != count:
            problems.append(f"{where}: {count} attempts on {route} but {logged} requests")
    for route in (cell.primary, cell.fallback):
        forbidden = _intervals(cell.events, route)
        for e in cell.events:
            if isinstance(e, AttemptStarted) and e.route == route:
                for start, end, why in forbidden:
                    if start <= e.at < end:
                        problems.append(f"{where}: attempt on {route} at {e.at} while {why}")
    return problems


def _table(cells: list[Cell]) -> str:
    columns = [(k, m) for k in KINDS for m in MODES]
    by_key = {(c.fault, c.kind, c.mode): c.label() for c in cells}
    width = max(len(v) for v in by_key.values()) + 2
    head = "fault".ljust(18) + "".join(f"{k}/{m}".ljust(width) for k, m in columns)
    lines = [head.rstrip(), "-" * len(head.rstrip())]
    for fault in FAULTS:
        row = fault.ljust(18) + "".join(by_key[(fault, k, m)].ljust(width) for k, m in columns)
        lines.append(row.rstrip())
    lines.append("")
    lines.append(
        "cell: outcome of each of the two calls; 'ok→X' answered by X; 'a+b' attempts on "
        "primary + fallback"
    )
    return "\n".join(lines)


@pytest.mark.timeout(120)
def test_the_whole_fault_matrix(server: ChaosServer, tmp_path: Path) -> None:
    server.clear_log()
    cells: list[Cell] = []
    engines: list[ResilientLLM] = []
    runner = asyncio.Runner()
    started = time.monotonic()
    try:
        for fault in FAULTS:
            for kind in KINDS:
                for mode in MODES:
                    cell, llm = _make_cell(server, fault, kind, mode)
                    engines.append(llm)
                    cells.append(cell)
                    for _ in range(CALLS_PER_CELL):
                        chunks: list[ChatChunk] = []
                        before = len(cell.events)
                        t0 = time.monotonic()
                        error: BaseException | None = None
                        text = ""
                        try:
                            with _cut(server, cell):
                                text = _run(llm, mode, runner, chunks)
                        except Exception as exc:  # recorded, then judged by _check_cell
                            error = exc
                        elapsed = time.monotonic() - t0
                        counts: dict[str, int] = {}
                        for e in cell.events[before:]:
                            if isinstance(e, AttemptStarted):
                                counts[e.route] = counts.get(e.route, 0) + 1
                        route = chunks[-1].provider if chunks and error is None else None
                        cell.calls.append(CallOutcome(error, chunks, text, route, elapsed, counts))
    finally:
        runner.close()
        for llm in engines:
            llm.close()
    total = time.monotonic() - started

    # A hung request is logged once its client has gone: wait for every attempt to land.
    def gather() -> bool:
        log = server.log
        for cell in cells:
            cell.log = {
                name: [
                    (r.status, r.fault, r.stream)
                    for r in sorted(log, key=lambda r: r.at)
                    if r.provider == name
                ]
                for name in (cell.primary, cell.fallback)
            }
        expected = sum(
            1
            for cell in cells
            for e in cell.events
            if isinstance(e, AttemptStarted)
            and not (cell.fault == "refused" and e.route == cell.primary)
        )
        return sum(len(v) for c in cells for v in c.log.values()) >= expected

    deadline = time.monotonic() + 5
    while not gather() and time.monotonic() < deadline:
        time.sleep(0.01)

    table = _table(cells)
    (tmp_path / "fault_matrix.txt").write_text(table + "\n", encoding="utf-8")
    print(f"\nfault matrix: {len(cells)} cells, {len(cells) * CALLS_PER_CELL} calls, {total:.1f}s")
    print(table)
    problems = [p for cell in cells for p in _check_cell(cell)]
    assert not problems, "\n".join(problems)
