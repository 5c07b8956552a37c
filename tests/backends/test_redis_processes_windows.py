"""Several processes share quotas of several windows through Redis, as providers count
them: per-minute input and output tokens (Anthropic), requests per day (Gemini), and a
daily quota one process learns from a 429 that every other then keeps to.

Each worker is a real process (``_worker.py``) making concurrent async calls through the
official SDK to the chaos server, whose quotas equal the configured ones (no margin). The
windows are long enough that each burst falls inside one (see ``test_redis_processes.py``):
every claim is a count, which no scheduling can change.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest

from resilient_llm.testing.chaos import ChaosServer, Plan

from .test_redis_processes import Fleet, _mine, chaos, fleet

__all__ = ["chaos", "fleet"]  # the fixtures, shared with the module they come from

_TAGS = itertools.count()
QUESTION = "What is the capital of France?"
MAX_TOKENS = 8  # the chaos answer is 8 tokens: each reply uses its whole allowance
DAY = 7200.0  # the shortened day: longer than an hour, so Redis keeps it in slices


def _names(*roles: str) -> dict[str, str]:
    tag = next(_TAGS)
    # The chaos server speaks the family its prefix starts with.
    kinds = {"anthropic": "anthropic", "gemini": "gemini", "spare": "openai"}
    return {role: f"{kinds[role]}-p{os.getpid()}x{tag}-{role}" for role in roles}


def _config(
    redis_url: str, prefix: str, chaos: ChaosServer, providers: list[tuple[str, str]], **extra: Any
) -> dict[str, Any]:
    return {
        "redis": redis_url,
        "prefix": prefix,
        "providers": [
            {"kind": kind, "name": name, "base_url": chaos.base_url(name), "limited": i == 0}
            for i, (kind, name) in enumerate(providers)
        ],
        "engines": {"main": [name for _, name in providers]},
        **extra,
    }


@pytest.mark.timeout(120)
def test_four_processes_share_an_anthropic_style_quota_output_binding(
    redis_url: str, prefix: str, chaos: ChaosServer, fleet: Fleet
) -> None:
    """RPM, input tokens and output tokens per minute; output binds at 40 replies of 8
    tokens. 4 processes x 20 concurrent calls: exactly 40 reach the provider, none is
    refused by it; the rest are refused before sending (the next minute is past their
    deadline)."""
    name = _names("anthropic")["anthropic"]
    output = 40 * MAX_TOKENS
    chaos.set_plan(name, Plan(rpm=60, input_tpm=4_000, output_tpm=output))
    limit = {
        "requests_per_minute": 60,
        "input_tokens_per_minute": 4_000,
        "output_tokens_per_minute": output,
    }
    config = _config(redis_url, prefix, chaos, [("anthropic", name)], rate_limit=limit)
    config["timeout"] = 10.0
    workers = fleet.setup(config)
    results = fleet.everyone(workers, {"n": 20, "max_tokens": MAX_TOKENS})
    flat = [r for batch in results for r in batch]
    answered = [r for r in flat if r["ok"]]
    records = _mine(chaos, name)
    rejected = sum(r.status == 429 for r in records)
    used = sum(r.status == 200 for r in records) * MAX_TOKENS / output
    print(f"\nredis, 4 processes, anthropic-style: {rejected} 429s, {used:.0%} of output used")
    assert rejected == 0
    assert len(answered) == 40
    assert used >= 0.9
    assert {r["error"] for r in flat if not r["ok"]} <= {"DeadlineExceeded", "RateLimited"}
    assert sum(1 for batch in results if any(r["ok"] for r in batch)) >= 2


@pytest.mark.timeout(120)
def test_four_processes_share_a_gemini_style_daily_quota_and_skip_the_route_when_spent(
    redis_url: str, prefix: str, chaos: ChaosServer, fleet: Fleet
) -> None:
    """Requests per minute and per (shortened) day: the day's 30 requests reach the Gemini
    route from the four processes together, none refused; every other call goes to the
    spare route at once rather than queue for the day, and each process's snapshot names
    the daily window holding the route."""
    names = _names("gemini", "spare")
    chaos.set_plan(names["gemini"], Plan(rpm=100, rpd=30, day=DAY))
    config = _config(
        redis_url,
        prefix,
        chaos,
        [("gemini", names["gemini"]), ("openai", names["spare"])],
        rate_limit={"requests_per_minute": 100},
        windows=[{"seconds": DAY, "requests": 30}],
    )
    workers = fleet.setup(config)
    results = fleet.everyone(workers, {"n": 15, "max_tokens": MAX_TOKENS})
    flat = [r for batch in results for r in batch]
    assert all(r["ok"] for r in flat), [r for r in flat if not r["ok"]][:3]
    records = _mine(chaos, names["gemini"])
    rejected = sum(r.status == 429 for r in records)
    served = sum(r.status == 200 for r in records)
    print(f"\nredis, 4 processes, gemini-style: {rejected} 429s, {served / 30:.0%} of the day used")
    assert rejected == 0
    assert served == 30
    assert sum(r["provider"] == names["spare"] for r in flat) == 60 - 30
    for worker in workers:
        limiter = worker.ask({"cmd": "snapshot"})["snapshot"][0]["limiter"]
        assert limiter["held_by"] == "requests/120min"
        assert 0 < limiter["held_for"] <= DAY * 1.01


@pytest.mark.timeout(120)
def test_a_daily_quota_one_process_learns_from_a_429_holds_every_process(
    redis_url: str, prefix: str, chaos: ChaosServer, fleet: Fleet
) -> None:
    """The quota is unknown to the client: the first process's 429 names the day's window
    and its limit (Gemini's QuotaFailure); through Redis every process keeps to it."""
    names = _names("gemini", "spare")
    chaos.set_plan(names["gemini"], Plan(rpd=5))
    config = _config(
        redis_url, prefix, chaos, [("gemini", names["gemini"]), ("openai", names["spare"])]
    )
    workers = fleet.setup(config)
    first = workers[0].ask({"cmd": "calls", "n": 1, "repeat": 7})["results"]
    assert [r["provider"] for r in first] == [names["gemini"]] * 5 + [names["spare"]] * 2
    rest = fleet.everyone(workers[1:], {"n": 5, "max_tokens": MAX_TOKENS})
    assert {r["provider"] for batch in rest for r in batch} == {names["spare"]}
    statuses = [r.status for r in _mine(chaos, names["gemini"])]
    assert statuses == [200] * 5 + [429]
    for worker in workers[1:]:
        limiter = worker.ask({"cmd": "snapshot"})["snapshot"][0]["limiter"]
        assert limiter["held_by"] == "requests/1d"
