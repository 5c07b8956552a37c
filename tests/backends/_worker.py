"""One application process of the multi-process tests: ``python -m tests.backends._worker``.

It says ``{"ready": ...}`` on stdout, then answers one JSON command per stdin line with one
JSON line, all on one event loop (as an application's worker would run):

- ``{"cmd": "setup", "config": {...}}``: (re)build its engines over one ``RedisState``
  (``config["redis"]`` None: the memory backend), from providers on the chaos server,
  limited by ``config["rate_limit"]`` (``RateLimit`` keywords) and ``config["windows"]``;
- ``{"cmd": "calls", "engine": NAME, "n": N, "repeat": R, ...}``: N concurrent tasks, each
  making R (default 1) ``achat`` calls in a row; each result says whether it was answered,
  by which route, or which error it raised, and when it started and ended
  (``time.monotonic``, which every process on the host shares);
- ``{"cmd": "snapshot", "engine": NAME}``: the engine's snapshot, per route;
- ``{"cmd": "exit"}``.

Every reply carries the events emitted since the previous reply. Nothing here is faked:
real SDK clients, real HTTP to the chaos server, real Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import sys
import time
from typing import Any

import resilient_llm.providers.openai.adapter  # noqa: F401 - the SDK, imported before any call
from resilient_llm import (
    BreakerPolicy,
    Event,
    Provider,
    RateLimit,
    ResilientLLM,
    ResilientLLMError,
    RetryPolicy,
)
from resilient_llm.state.redis import RedisState


def build(
    config: dict[str, Any], events: list[Event]
) -> tuple[dict[str, ResilientLLM], RedisState | None]:
    state = (
        None
        if config["redis"] is None
        else RedisState(config["redis"], prefix=config["prefix"], **config.get("state", {}))
    )
    for kind in {p["kind"] for p in config["providers"]}:
        # Each family's SDK before any call: an import on the first call (seconds, on a
        # loaded machine) would eat the calls' deadlines.
        importlib.import_module(f"resilient_llm.providers.{kind}.adapter")
    limit = config.get("rate_limit")
    if limit:
        built = RateLimit(**limit)
        # Further windows, ``RateLimit.window`` keyword arguments each, combined with ``|``.
        for window in config.get("windows", ()):
            built = built | RateLimit.window(**window)
    providers = {
        p["name"]: Provider(
            p["kind"],
            "chaos-model",
            name=p["name"],
            base_url=p["base_url"],
            api_key="test-key",
            rate_limit=built if limit and p.get("limited", True) else None,
        )
        for p in config["providers"]
    }
    breaker = BreakerPolicy(**config.get("breaker", {}))
    retry = RetryPolicy(**config.get("retry", {"max_retries": 0}))
    engines = {
        name: ResilientLLM(
            [providers[p] for p in names],
            state=state,
            breaker=breaker,
            retry=retry,
            timeout=config.get("timeout", 30.0),
            on_event=events.append,
            jitter_seed=0,
        )
        for name, names in config["engines"].items()
    }
    return engines, state


async def one_call(llm: ResilientLLM, command: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    options: dict[str, Any] = {}
    if command.get("max_tokens") is not None:
        options["max_tokens"] = command["max_tokens"]
    if command.get("timeout") is not None:
        options["timeout"] = command["timeout"]
    try:
        reply = await llm.achat(command.get("prompt", "What is the capital of France?"), **options)
    except ResilientLLMError as exc:
        return {
            "ok": False,
            "error": type(exc).__name__,
            "message": str(exc),
            "started": started,
            "ended": time.monotonic(),
        }
    usage = reply.usage
    return {
        "ok": True,
        "provider": reply.provider,
        "text": reply.content,
        "usage": None if usage is None else usage.total_tokens,
        "attempts": reply.metadata.get("attempt_count"),
        "started": started,
        "ended": time.monotonic(),
    }


async def calls(llm: ResilientLLM, command: dict[str, Any]) -> list[dict[str, Any]]:
    """``n`` concurrent tasks, each making ``repeat`` calls one after another."""

    async def task() -> list[dict[str, Any]]:
        return [await one_call(llm, command) for _ in range(command.get("repeat", 1))]

    batches = await asyncio.gather(*(task() for _ in range(command["n"])))
    return [result for batch in batches for result in batch]


def _event(event: Event) -> dict[str, Any]:
    return {"type": type(event).__name__, **dataclasses.asdict(event)}


async def serve() -> None:
    events: list[Event] = []
    engines: dict[str, ResilientLLM] = {}
    state: RedisState | None = None
    loop = asyncio.get_running_loop()

    def say(payload: dict[str, Any]) -> None:
        payload["events"] = [_event(e) for e in events]
        events.clear()
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    say({"ready": True})
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        if command["cmd"] == "exit":
            break
        if command["cmd"] == "setup":
            close(engines, state)
            events.clear()
            engines, state = build(command["config"], events)
            say({"setup": sorted(engines)})
            continue
        llm = engines[command.get("engine", "main")]
        if command["cmd"] == "calls":
            say({"results": await calls(llm, command)})
        elif command["cmd"] == "snapshot":
            say({"snapshot": [dataclasses.asdict(route) for route in llm.snapshot()]})
    close(engines, state)


def close(engines: dict[str, ResilientLLM], state: RedisState | None) -> None:
    for llm in engines.values():
        llm.close()
    if state is not None:
        state.close()


if __name__ == "__main__":
    asyncio.run(serve())
