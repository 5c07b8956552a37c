"""An engine used before ``os.fork()`` serves the parent and every child, each its own replies.

Prefork servers (gunicorn ``--preload``, Celery) build the engine and often make a call
before forking their workers. The children must not read replies from the parent's HTTP
connections, and must not block on a lock some other thread of the parent held at the
fork. Every process here checks that each reply answers its own request (the chaos
provider echoes the prompt, after a random delay, so requests on a shared connection would
cross); children report through a pipe and their exit code.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

# The SDKs are imported once, here, not inside a first attempt (adapters import lazily).
import resilient_llm.providers
import resilient_llm.providers.anthropic
import resilient_llm.providers.gemini
import resilient_llm.providers.openai
import resilient_llm.tokens
from resilient_llm import Provider, RateLimit, ResilientLLM, RetryPolicy
from resilient_llm.chaos import ChaosServer, Fault

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")

KINDS = ("openai", "anthropic", "gemini")
CHILDREN = 3
CALLS = 12  # per process (and per background thread of the parent)
HANG = 120.0  # a child still running after this long is blocked: a failure, not a timing


@pytest.fixture(scope="module")
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _engine(server: ChaosServer, kind: str) -> ResilientLLM:
    provider = Provider(
        kind,  # type: ignore[arg-type]
        "chaos-model",
        base_url=server.base_url(kind),
        api_key="test-key",
        rate_limit=RateLimit(requests_per_minute=100_000),
        max_concurrency=64,
    )
    return ResilientLLM([provider], retry=RetryPolicy(max_retries=0), timeout=30)


def _jitter(server: ChaosServer, kind: str, count: int, seed: int) -> None:
    """Answer the next ``count`` requests each after a random delay, so they interleave."""
    rng = random.Random(seed)
    server.script(kind, *[Fault("ok", delay=rng.uniform(0.0, 0.02)) for _ in range(count)])


def _calls(llm: ResilientLLM, mode: str, tag: str, count: int) -> tuple[int, list[str]]:
    """Make ``count`` calls; return how many answered another request, and any errors."""
    prompts = [f"{tag} request {i}" for i in range(count)]
    errors: list[str] = []
    wrong = 0

    def check(prompt: str, content: str) -> None:
        nonlocal wrong
        if content != f"Echo: {prompt}":
            wrong += 1

    if mode == "chat":
        for prompt in prompts:
            try:
                check(prompt, llm.chat(prompt).content)
            except Exception as exc:
                errors.append(repr(exc))
        return wrong, errors

    async def one(prompt: str) -> None:
        try:
            check(prompt, (await llm.achat(prompt)).content)
        except Exception as exc:
            errors.append(repr(exc))

    async def all_of_them() -> None:
        await asyncio.gather(*(one(p) for p in prompts))

    asyncio.run(all_of_them())
    return wrong, errors


def _report(result: tuple[int, list[str]]) -> dict[str, object]:
    return {"wrong": result[0], "errors": result[1]}


def _fork(work: Callable[[], dict[str, object]]) -> tuple[int, int]:
    """Fork a child that runs ``work`` and reports its result on a pipe; (pid, read end)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read)
            result = work()
            os.write(write, json.dumps(result).encode())
        except BaseException as exc:
            os.write(write, json.dumps({"crash": repr(exc)}).encode())
            code = 3
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


def _collect(pid: int, read: int) -> dict[str, object]:
    """The child's report, once it has exited; a child that blocks is killed and failed."""
    give_up = time.monotonic() + HANG
    status = 0
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > give_up:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read)
            return {"blocked": True}
        select.select([read], [], [], 0.05)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    report: dict[str, object] = json.loads(b"".join(chunks) or b"{}")
    report["exit"] = os.waitstatus_to_exitcode(status)
    return report


@pytest.mark.parametrize("busy", [0, 2], ids=["idle", "busy"])
@pytest.mark.parametrize("mode", ["chat", "achat"])
@pytest.mark.parametrize("kind", KINDS)
def test_each_process_gets_its_own_replies_after_a_fork(
    server: ChaosServer, kind: str, mode: str, busy: int
) -> None:
    """``busy``: that many other threads of the parent are inside calls as it forks."""
    llm = _engine(server, kind)
    total = CALLS * (CHILDREN + 4) + 2
    _jitter(server, kind, total, seed=len(kind))
    # A call before the fork leaves the sync client's pool with an open connection.
    assert llm.chat("warm up").content == "Echo: warm up"
    background: list[tuple[int, list[str]]] = []
    threads = [
        threading.Thread(
            target=lambda n=n: background.append(_calls(llm, mode, f"parent-thread-{n}", CALLS))
        )
        for n in range(busy)
    ]
    for thread in threads:
        thread.start()
    children = [
        _fork(lambda c=c: _report(_calls(llm, mode, f"child-{c}", CALLS))) for c in range(CHILDREN)
    ]
    own = _calls(llm, mode, "parent", CALLS)
    reports = [_collect(pid, read) for pid, read in children]
    for thread in threads:
        thread.join()
    # The children have exited: the parent's connections still serve it.
    after = _calls(llm, mode, "parent after", 2)
    llm.close()

    assert reports == [{"wrong": 0, "errors": [], "exit": 0}] * CHILDREN
    assert own == (0, [])
    assert background == [(0, [])] * busy
    assert after == (0, [])


def _locks(roots: list[object]) -> list[threading.Lock]:
    """Every ``threading.Lock`` reachable from ``roots`` through the engine's own objects."""
    lock_type = type(threading.Lock())
    found: dict[int, threading.Lock] = {}
    seen: set[int] = set()
    pending = list(roots)
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, lock_type):
            found[id(item)] = item
        elif isinstance(item, dict):
            pending += list(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            pending += list(item)
        elif type(item).__module__.startswith("resilient_llm") or item in roots:
            pending += list(getattr(item, "__dict__", {}).values())
    return list(found.values())


@pytest.mark.parametrize("kind", KINDS)
def test_a_child_never_blocks_on_a_lock_held_at_the_fork(server: ChaosServer, kind: str) -> None:
    """Another thread holds every lock of the engine (limiter, breaker, routes, bulkhead,
    clients, the SDK import, the tokenizer) at the moment of the fork; the child's calls
    still go through, and so do the parent's once the thread lets go."""
    llm = _engine(server, kind)
    llm.chat("warm up")
    asyncio.run(llm.achat("warm up"))
    locks = _locks([llm, resilient_llm.tokens, resilient_llm.providers])
    assert len(locks) >= 8, "the walk reaches the engine's locks"
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        for lock in locks:
            lock.acquire()
        held.set()
        release.wait()
        for lock in locks:
            lock.release()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        pid, read = _fork(
            lambda: {
                "chat": llm.chat("from the child").content,
                "achat": asyncio.run(llm.achat("from the child, async")).content,
            }
        )
    finally:
        release.set()
        holder.join()
    report = _collect(pid, read)
    assert report == {
        "chat": "Echo: from the child",
        "achat": "Echo: from the child, async",
        "exit": 0,
    }
    assert llm.chat("parent again").content == "Echo: parent again"
    llm.close()
