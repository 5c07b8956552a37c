"""Forking helpers shared by the fork-safety tests: calls that check their own replies, a
child that reports through a pipe, and the engine's locks found by walking its objects."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable

from resilient_llm import ResilientLLM

__all__ = ["HANG", "calls", "collect", "engine_locks", "fork", "report"]

HANG = 120.0  # a child still running after this long is blocked: a failure, not a timing


def calls(llm: ResilientLLM, mode: str, tag: str, count: int) -> tuple[int, list[str]]:
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


def report(result: tuple[int, list[str]]) -> dict[str, object]:
    return {"wrong": result[0], "errors": result[1]}


def fork(work: Callable[[], dict[str, object]]) -> tuple[int, int]:
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


def collect(pid: int, read: int) -> dict[str, object]:
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


def engine_locks(roots: list[object]) -> list[threading.Lock]:
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
