"""The response cache in Redis: the same contract as the memory store, shared by processes.

Runs against this worker's real ``redis-server`` (tests/backends/conftest.py); the test
that takes Redis away kills a private server of its own.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis

from resilient_llm import (
    ChatResponse,
    ConfigurationError,
    Provider,
    ResilientLLM,
    RetryPolicy,
    ToolCall,
    Usage,
)
from resilient_llm.events import CacheUnavailable, Event
from resilient_llm.extras.cache import CacheStore
from resilient_llm.state.redis.cache import RedisCache
from resilient_llm.testing.chaos import ChaosServer, Plan

from .conftest import RedisServer

QUESTION = "What is the capital of France?"
_TAGS = itertools.count()

REPLY = ChatResponse(
    content="Paris — «capitale»",
    provider="anthropic",
    model="claude",
    tool_calls=(ToolCall("toolu_1", "lookup", {"city": "Paris", "n": [1, 2.5, None]}),),
    usage=Usage(12, 34),
    finish_reason="tool_calls",
    metadata={"id": "msg_1", "nested": {"a": [True, False]}},
    rate_limit_headers={"retry-after": "1"},
)


@pytest.fixture
def cache(redis_url: str, prefix: str) -> Iterator[RedisCache]:
    store = RedisCache(redis_url, prefix=prefix, ttl=30.0)
    yield store
    store.clear()
    store.close()


def test_a_reply_round_trips_exactly_through_redis(cache: RedisCache) -> None:
    assert isinstance(cache, CacheStore)
    assert cache.get("k") is None
    cache.set("k", REPLY)
    assert cache.get("k") == REPLY


def test_entries_expire_by_redis_own_clock(cache: RedisCache, redis_server: RedisServer) -> None:
    cache.set("k", REPLY)
    client = redis_server.client()
    try:
        left = client.pttl(cache.key("k"))
        assert 29_000 < left <= 30_000
        client.pexpire(cache.key("k"), 1)  # as if 30 s had gone by
        # PEXPIRE of 1 ms: poll until Redis retires it rather than assume a duration.
        for _ in range(1000):
            if cache.get("k") is None:
                break
        assert cache.get("k") is None
    finally:
        client.close()


def test_ttl_none_leaves_eviction_to_redis(
    redis_url: str, prefix: str, redis_server: RedisServer
) -> None:
    store = RedisCache(redis_url, prefix=prefix, ttl=None)
    try:
        store.set("k", REPLY)
        client = redis_server.client()
        assert client.pttl(store.key("k")) == -1
        client.close()
    finally:
        store.clear()
        store.close()


def test_clear_removes_only_this_prefix(redis_url: str, prefix: str) -> None:
    mine = RedisCache(redis_url, prefix=prefix)
    theirs = RedisCache(redis_url, prefix=prefix + "-other")
    try:
        for i in range(3):
            mine.set(str(i), REPLY)
        theirs.set("0", REPLY)
        assert mine.clear() == 3
        assert mine.get("0") is None
        assert theirs.get("0") == REPLY
    finally:
        theirs.clear()
        mine.close()
        theirs.close()


def test_a_client_may_be_given_and_is_not_closed(redis_server: RedisServer, prefix: str) -> None:
    client = redis_server.client()  # bytes replies: decode_responses off
    store = RedisCache(client, prefix=prefix)
    store.set("k", REPLY)
    assert store.get("k") == REPLY
    store.close()
    assert client.ping()
    store.clear()
    client.close()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"prefix": ""}, "prefix"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": 0.0001}, "ttl"),
        ({"ttl": "5"}, "ttl"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": None}, "timeout"),
        ({"include_nonzero_temperature": "yes"}, "include_nonzero_temperature"),
    ],
)
def test_settings_are_checked(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=f"RedisCache.{field}"):
        RedisCache("redis://127.0.0.1:1/0", **options)


def test_targets_are_checked_and_repr_hides_the_password() -> None:
    with pytest.raises(ConfigurationError, match="redis://"):
        RedisCache("http://127.0.0.1:6379")
    with pytest.raises(ConfigurationError, match=r"redis\.Redis"):
        RedisCache(42)  # type: ignore[arg-type]
    store = RedisCache("redis://:hunter2@127.0.0.1:1/0", ttl=timedelta(seconds=5))
    assert "hunter2" not in repr(store)
    assert store.ttl == 5.0
    store.close()


# -- through the engine ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chaos() -> Iterator[ChaosServer]:
    with ChaosServer() as server:
        yield server


class Rig:
    def __init__(self, chaos: ChaosServer) -> None:
        self.chaos = chaos
        self.name = f"openai-rcache{next(_TAGS)}"
        chaos.set_plan(self.name, Plan())
        self.events: list[Event] = []
        self.engines: list[ResilientLLM] = []

    def engine(self, cache: Any) -> ResilientLLM:
        provider = Provider(
            "openai",
            "chaos-model",
            base_url=self.chaos.base_url(self.name),
            api_key="test-key",
            name=self.name,
        )
        llm = ResilientLLM(
            [provider],
            cache=cache,
            retry=RetryPolicy(max_retries=0),
            timeout=10.0,
            on_event=self.events.append,
        )
        self.engines.append(llm)
        return llm

    def upstream(self) -> int:
        return sum(1 for r in self.chaos.log if r.provider == self.name)


@pytest.fixture
def rig(chaos: ChaosServer) -> Iterator[Rig]:
    rig = Rig(chaos)
    yield rig
    for llm in rig.engines:
        llm.close()


def test_two_engines_share_entries_as_two_processes_would(
    rig: Rig, redis_url: str, prefix: str
) -> None:
    first = rig.engine(RedisCache(redis_url, prefix=prefix))
    second = rig.engine(RedisCache(redis_url, prefix=prefix))
    answer = first.chat(QUESTION, temperature=0)
    shared = second.chat(QUESTION, temperature=0)
    assert shared.metadata["cache"] == "hit"
    assert dataclasses.replace(shared, metadata={}) == dataclasses.replace(
        answer, metadata={}, rate_limit_headers={}
    )
    assert rig.upstream() == 1
    assert isinstance(second.cache, RedisCache)
    second.cache.clear()


def test_redis_going_away_degrades_to_misses_and_back(rig: Rig, own_redis: RedisServer) -> None:
    store = RedisCache(own_redis.url, timeout=0.2)
    llm = rig.engine(store)
    llm.chat(QUESTION, temperature=0)
    assert llm.chat(QUESTION, temperature=0).metadata["cache"] == "hit"

    own_redis.kill()
    for _ in range(2):
        assert llm.chat(QUESTION, temperature=0).content == "The capital of France is Paris."
    failures = [(e.operation, e.error) for e in rig.events if isinstance(e, CacheUnavailable)]
    assert failures == [("get", "ConnectionError"), ("set", "ConnectionError")] * 2

    own_redis.restart()  # empty: persistence is off
    assert llm.chat(QUESTION, temperature=0).metadata["cache"] == "miss"
    assert llm.chat(QUESTION, temperature=0).metadata["cache"] == "hit"
    assert rig.upstream() == 4
    store.close()


def test_a_corrupt_entry_is_a_miss_with_an_event(
    rig: Rig, redis_url: str, prefix: str, redis_server: RedisServer
) -> None:
    store = RedisCache(redis_url, prefix=prefix)
    llm = rig.engine(store)
    llm.chat(QUESTION, temperature=0)
    client: redis.Redis = redis_server.client()
    (key,) = client.keys(f"{prefix}:cache:v1:*")
    client.set(key, b"\x00not json")
    client.close()
    assert llm.chat(QUESTION, temperature=0).metadata["cache"] == "miss"
    assert [(e.operation, e.error) for e in rig.events if isinstance(e, CacheUnavailable)] == [
        ("get", "ValueError")
    ]
    assert llm.chat(QUESTION, temperature=0).metadata["cache"] == "hit"  # rewritten
    store.clear()
    store.close()
