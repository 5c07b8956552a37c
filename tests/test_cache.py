"""The response cache: keys, policy, LRU and TTL, and hits that never reach a provider.

Store behaviour runs on a ``FakeClock`` (nothing sleeps); engine behaviour runs against the
chaos server, whose request log counts the calls that went upstream.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_llm import (
    BadRequest,
    ChatRequest,
    ChatResponse,
    ConfigurationError,
    FakeClock,
    Message,
    Provider,
    ResilientLLM,
    RetryPolicy,
    Tool,
    ToolCall,
    Usage,
)
from resilient_llm.events import CacheHit, CacheMiss, CacheUnavailable, Event
from resilient_llm.extras.cache import (
    CacheStore,
    ResponseCache,
    cache_key,
    dump_response,
    key_material,
    load_response,
)
from resilient_llm.testing.chaos import ChaosServer, Plan

QUESTION = "What is the capital of France?"
ADD = Tool(
    "add",
    "Add two integers",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)
_TAGS = itertools.count()


def reply(text: str = "hi", **changes: Any) -> ChatResponse:
    base = ChatResponse(content=text, provider="openai", model="m", usage=Usage(3, 4))
    return dataclasses.replace(base, **changes)


# -- the in-memory store -------------------------------------------------------------------


def test_entries_expire_after_ttl_on_the_injected_clock() -> None:
    clock = FakeClock()
    cache = ResponseCache(ttl=10.0, clock=clock)
    cache.set("k", reply())
    clock.advance(9.999)
    assert cache.get("k") == reply()
    clock.advance(0.001)
    assert cache.get("k") is None
    assert len(cache) == 0


def test_ttl_accepts_a_timedelta_and_none_keeps_entries_until_evicted() -> None:
    clock = FakeClock()
    assert ResponseCache(ttl=timedelta(minutes=2)).ttl == 120.0
    forever = ResponseCache(ttl=None, clock=clock)
    forever.set("k", reply())
    clock.advance(1e9)
    assert forever.get("k") == reply()


def test_least_recently_used_goes_first_and_a_read_counts_as_use() -> None:
    cache = ResponseCache(max_entries=3, clock=FakeClock())
    for key in "abc":
        cache.set(key, reply(key))
    assert cache.get("a") is not None  # a is now the most recent
    cache.set("d", reply("d"))
    assert cache.keys() == ["c", "a", "d"]
    assert cache.get("b") is None
    cache.set("c", reply("c2"))  # rewriting refreshes too
    cache.set("e", reply("e"))
    assert cache.keys() == ["d", "c", "e"]


def test_max_bytes_bounds_the_total_and_an_oversized_reply_is_not_kept() -> None:
    one = len(dump_response(reply("x" * 100)))
    cache = ResponseCache(max_bytes=2 * one + 10, clock=FakeClock())
    for key in "abc":
        cache.set(key, reply("x" * 100))
    assert cache.keys() == ["b", "c"]
    cache.set("huge", reply("y" * 10_000))
    assert cache.keys() == ["b", "c"]
    cache.clear()
    assert len(cache) == 0


def test_a_hit_is_a_copy_the_caller_may_mutate() -> None:
    cache = ResponseCache(clock=FakeClock())
    cache.set("k", reply(tool_calls=(ToolCall("c1", "add", {"a": [1]}),)))
    first = cache.get("k")
    assert first is not None
    first.tool_calls[0].arguments["a"].append(2)  # type: ignore[index]
    again = cache.get("k")
    assert again is not None
    assert again.tool_calls[0].arguments == {"a": [1]}


def test_the_store_is_safe_under_threads() -> None:
    cache = ResponseCache(max_entries=16, clock=FakeClock())
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(300):
                key = str((seed * 7 + i) % 40)
                cache.set(key, reply(key))
                got = cache.get(key)
                assert got is None or got.content == key
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 16
    assert cache._bytes == sum(len(p) for _, p in cache._entries.values())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_entries", 0),
        ("max_entries", 1.5),
        ("max_entries", True),
        ("ttl", 0),
        ("ttl", -1),
        ("ttl", float("inf")),
        ("ttl", "300"),
        ("max_bytes", 0),
        ("clock", "now"),
        ("include_nonzero_temperature", 1),
    ],
)
def test_settings_are_checked_and_the_error_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=f"ResponseCache.{field}"):
        ResponseCache(**{field: value})


def test_the_engine_refuses_what_is_not_a_cache() -> None:
    with pytest.raises(ConfigurationError, match=r"ResilientLLM\.cache"):
        ResilientLLM([Provider("openai", "m", api_key="k")], cache={})  # type: ignore[arg-type]
    assert isinstance(ResponseCache(), CacheStore)


# -- stored replies round-trip exactly -----------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(
    content=st.text(),
    calls=st.lists(
        st.builds(
            ToolCall,
            id=st.text(),
            name=st.text(min_size=1),
            arguments=st.dictionaries(st.text(), _json, max_size=3),
        )
        | st.builds(
            ToolCall,
            id=st.text(),
            name=st.text(min_size=1),
            raw_arguments=st.text(),
            error=st.text(min_size=1),
        ),
        max_size=3,
    ),
    usage=st.none() | st.builds(Usage, st.integers(0, 10**9), st.integers(0, 10**9)),
    finish=st.none() | st.sampled_from(["stop", "tool_calls", "length"]),
    metadata=st.dictionaries(st.text(), _json, max_size=3),
    headers=st.dictionaries(st.text(), st.text(), max_size=3),
)
def test_a_reply_round_trips_exactly(
    content: str,
    calls: list[ToolCall],
    usage: Usage | None,
    finish: str | None,
    metadata: dict[str, Any],
    headers: dict[str, str],
) -> None:
    original = ChatResponse(
        content=content,
        provider="anthropic",
        model="claude",
        tool_calls=tuple(calls),
        usage=usage,
        finish_reason=finish,
        metadata=metadata,
        rate_limit_headers=headers,
    )
    assert load_response(dump_response(original)) == original
    assert load_response(dump_response(original).encode()) == original


@pytest.mark.parametrize(
    "payload",
    ["", "[]", '{"v": 99}', '{"v": 1, "content": 3}', b"\xff", '{"v": 1}', "{"],
)
def test_a_corrupt_entry_is_a_value_error(payload: str | bytes) -> None:
    with pytest.raises(ValueError, match=r"corrupt cache entry|not a stored reply"):
        load_response(payload)


# -- keys ------------------------------------------------------------------------------------

ROUTES = [
    Provider("openai", "gpt-4o-mini", api_key="sk-live-SECRET"),
    Provider("anthropic", "claude-haiku-4-5", api_key="sk-ant-SECRET"),
]
BASE = ChatRequest(messages=(Message("user", QUESTION),), temperature=0)


@pytest.mark.parametrize(
    "change",
    [
        {"messages": (Message("user", "What is the capital of Italy?"),)},
        {"messages": (Message("system", "Be brief."), Message("user", QUESTION))},
        {"temperature": 0.5},
        {"tools": (ADD,)},
        {"tools": (ADD,), "tool_choice": "add"},
        {"response_schema": {"type": "object"}},
        {"json_mode": True},
        {"max_tokens": 10},
        {"stop": ("\n",)},
        {"model": "gpt-4o"},
    ],
)
def test_anything_that_shapes_the_answer_changes_the_key(change: dict[str, Any]) -> None:
    assert cache_key(dataclasses.replace(BASE, **change), ROUTES) != cache_key(BASE, ROUTES)


def test_tool_calls_and_results_in_the_history_are_part_of_the_key() -> None:
    def history(args: dict[str, Any], result: str) -> ChatRequest:
        return ChatRequest(
            messages=(
                Message("user", "What is 2 + 3?"),
                Message("assistant", tool_calls=(ToolCall("call_1", "add", args),)),
                Message("tool", result, tool_call_id="call_1"),
            ),
            tools=(ADD,),
            temperature=0,
        )

    keys = {
        cache_key(history({"a": 2, "b": 3}, "5"), ROUTES),
        cache_key(history({"a": 2, "b": 4}, "5"), ROUTES),
        cache_key(history({"a": 2, "b": 3}, "6"), ROUTES),
    }
    assert len(keys) == 3


def test_the_text_of_an_invalid_tool_call_is_part_of_the_key() -> None:
    def history(raw: str) -> ChatRequest:
        call = ToolCall("call_1", "add", raw_arguments=raw, error="not JSON")
        return ChatRequest(
            messages=(Message("user", "What is 2 + 3?"), Message("assistant", tool_calls=(call,))),
            temperature=0,
        )

    assert cache_key(history("{a: 2}"), ROUTES) != cache_key(history("{a: 3}"), ROUTES)


def test_the_routes_are_part_of_the_key() -> None:
    other_model = [Provider("openai", "gpt-4o", api_key="k"), ROUTES[1]]
    reordered = [ROUTES[1], ROUTES[0]]
    keys = {cache_key(BASE, r) for r in (ROUTES, other_model, reordered, ROUTES[:1])}
    assert len(keys) == 4


def test_secrets_never_shape_the_key() -> None:
    """Keys and credentials in a base URL are left out: the same request with another key
    (or another password in the URL) is the same entry, and nothing secret is hashed."""

    def routes(key: str, url: str) -> list[Provider]:
        return [Provider("openai", "m", api_key=key, base_url=url, name="gw")]

    one = routes("sk-one", "https://alice:pw1@gw.example/v1?key=abc#frag")
    two = routes("sk-two", "https://other:pw2@gw.example/v1/?key=xyz")
    assert cache_key(BASE, one) == cache_key(BASE, two)
    assert cache_key(BASE, one) != cache_key(BASE, routes("sk-one", "https://gw2.example/v1"))
    material = key_material(BASE, one)
    assert material is not None
    for secret in ("sk-one", "alice", "pw1", "abc", "frag"):
        assert secret not in material
    assert "https://gw.example/v1" in material


def test_integral_and_float_zero_temperature_are_one_key() -> None:
    assert cache_key(dataclasses.replace(BASE, temperature=0.0), ROUTES) == cache_key(
        dataclasses.replace(BASE, temperature=0), ROUTES
    )


def test_a_request_json_cannot_write_has_no_key() -> None:
    # A ChatRequest refuses such a schema when built; the key must still not raise on one
    # that got past the check.
    odd = copy.copy(BASE)
    object.__setattr__(odd, "response_schema", {"type": "object", "enum": {1, 2}})
    assert cache_key(odd, ROUTES) is None


# -- through the engine, against the chaos server --------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


class Rig:
    """Fresh chaos prefixes and an engine over them; counts what reached the server."""

    def __init__(self, server: ChaosServer) -> None:
        self.server = server
        self.names: list[str] = []
        self.events: list[Event] = []
        self.engines: list[ResilientLLM] = []

    def route(self, kind: str = "openai") -> Provider:
        name = f"{kind}-cache{next(_TAGS)}"
        self.server.set_plan(name, Plan())
        self.names.append(name)
        return Provider(
            kind,  # type: ignore[arg-type]
            "chaos-model",
            base_url=self.server.base_url(name),
            api_key="test-key",
            name=name,
        )

    def engine(self, *providers: Provider, cache: Any, **options: Any) -> ResilientLLM:
        llm = ResilientLLM(
            list(providers) or [self.route()],
            cache=cache,
            retry=RetryPolicy(max_retries=0),
            timeout=10.0,
            jitter_seed=0,
            on_event=self.events.append,
            **options,
        )
        self.engines.append(llm)
        return llm

    def upstream(self) -> int:
        """Chat requests this test sent to the server (count-tokens calls aside)."""
        return sum(1 for r in self.server.log if r.provider in self.names and "count" not in r.path)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def rig(server: ChaosServer) -> Iterator[Rig]:
    rig = Rig(server)
    yield rig
    for llm in rig.engines:
        llm.close()


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_a_hit_never_reaches_the_provider_nor_its_limiter(rig: Rig, kind: str) -> None:
    llm = rig.engine(rig.route(kind), cache=ResponseCache())
    first = llm.chat(QUESTION, temperature=0)
    second = llm.chat(QUESTION, temperature=0)
    assert rig.upstream() == 1
    assert second.content == first.content == "The capital of France is Paris."
    assert (second.provider, second.model, second.usage) == (
        first.provider,
        first.model,
        first.usage,
    )
    assert first.metadata["cache"] == "miss"
    assert second.metadata["cache"] == "hit"
    assert second.metadata["attempt_count"] == 0
    assert second.metadata["attempts"] == []
    assert second.metadata["provider"] == first.provider
    assert second.rate_limit_headers == {}
    assert llm.snapshot().routes[0].limiter.requests_used == 1
    assert [e.provider for e in rig.of(CacheHit)] == [first.provider]
    assert len(rig.of(CacheMiss)) == 1


def test_different_requests_miss(rig: Rig) -> None:
    llm = rig.engine(cache=ResponseCache())
    llm.chat(QUESTION, temperature=0)
    llm.chat(QUESTION, temperature=0, max_tokens=50)
    llm.chat("What is the capital of Italy?", temperature=0)
    llm.chat(QUESTION, temperature=0, tools=[ADD])
    llm.chat(QUESTION, temperature=0, tools=[ADD], tool_choice="add")
    llm.chat(QUESTION, temperature=0, response_schema={"type": "object"})
    assert rig.upstream() == 6
    assert not rig.of(CacheHit)


def test_sampling_requests_are_not_cached_unless_asked(rig: Rig) -> None:
    llm = rig.engine(cache=ResponseCache())
    for temperature in (None, None, 0.7, 0.7):
        got = llm.chat(QUESTION, temperature=temperature)
        assert got.metadata["cache"] == "bypass"
    assert rig.upstream() == 4
    assert not rig.of(CacheMiss)

    opted = rig.engine(cache=ResponseCache(include_nonzero_temperature=True))
    opted.chat(QUESTION, temperature=0.7)
    assert opted.chat(QUESTION, temperature=0.7).metadata["cache"] == "hit"
    opted.chat(QUESTION)
    assert opted.chat(QUESTION).metadata["cache"] == "hit"
    opted.chat(QUESTION, temperature=1.0)  # another temperature, another entry
    assert rig.upstream() == 4 + 3


def test_an_error_is_never_stored(rig: Rig) -> None:
    route = rig.route()
    llm = rig.engine(route, cache=ResponseCache())
    rig.server.script(route.name, "bad_request")
    with pytest.raises(BadRequest):
        llm.chat(QUESTION, temperature=0)
    assert llm.chat(QUESTION, temperature=0).metadata["cache"] == "miss"
    assert llm.chat(QUESTION, temperature=0).metadata["cache"] == "hit"
    assert rig.upstream() == 2


def test_entries_expire_on_the_cache_clock(rig: Rig) -> None:
    clock = FakeClock()
    llm = rig.engine(cache=ResponseCache(ttl=60, clock=clock))
    llm.chat(QUESTION, temperature=0)
    clock.advance(59)
    assert llm.chat(QUESTION, temperature=0).metadata["cache"] == "hit"
    clock.advance(1)
    assert llm.chat(QUESTION, temperature=0).metadata["cache"] == "miss"
    assert rig.upstream() == 2


def test_streams_replay_hits_and_store_what_they_finish(rig: Rig) -> None:
    llm = rig.engine(cache=ResponseCache())
    streamed = list(llm.stream(QUESTION, temperature=0))
    assert len(streamed) > 1
    assert streamed[0].metadata["cache"] == "miss"
    text = "".join(c.delta for c in streamed)

    (replayed,) = list(llm.stream(QUESTION, temperature=0))
    assert replayed.delta == text
    assert replayed.metadata["cache"] == "hit"
    assert replayed.usage == next(c.usage for c in reversed(streamed) if c.usage)
    assert replayed.finish_reason == "stop"
    # Chats and streams share entries.
    assert llm.chat(QUESTION, temperature=0).content == text
    assert rig.upstream() == 1


def test_a_streamed_tool_call_is_stored_whole(rig: Rig) -> None:
    llm = rig.engine(cache=ResponseCache())
    question = "What is 2 + 3?"
    streamed = list(llm.stream(question, temperature=0, tools=[ADD], tool_choice="add"))
    calls = [call for chunk in streamed for call in chunk.tool_calls]
    assert [c.name for c in calls] == ["add"]
    hit = llm.chat(question, temperature=0, tools=[ADD], tool_choice="add")
    assert hit.metadata["cache"] == "hit"
    assert hit.tool_calls == tuple(calls)
    assert rig.upstream() == 1


def test_an_abandoned_stream_stores_nothing(rig: Rig) -> None:
    llm = rig.engine(cache=ResponseCache())
    stream = llm.stream(QUESTION, temperature=0)
    next(stream)
    stream.close()
    assert llm.chat(QUESTION, temperature=0).metadata["cache"] == "miss"
    assert rig.upstream() == 2


def test_async_calls_and_streams_use_the_same_cache(rig: Rig) -> None:
    llm = rig.engine(cache=ResponseCache())

    async def main() -> tuple[ChatResponse, list[str], ChatResponse]:
        first = await llm.achat(QUESTION, temperature=0)
        chunks = [c.delta async for c in llm.astream(QUESTION, temperature=0)]
        again = await llm.achat(QUESTION, temperature=0)
        return first, chunks, again

    first, chunks, again = asyncio.run(main())
    assert chunks == [first.content]
    assert again.metadata["cache"] == "hit"
    assert rig.upstream() == 1


def test_concurrent_identical_calls_each_miss_then_later_ones_hit(rig: Rig) -> None:
    """No request coalescing: calls in flight together all go upstream; the cache then
    holds one entry for the lot."""
    cache = ResponseCache()
    llm = rig.engine(cache=cache)

    async def main() -> list[ChatResponse]:
        return await asyncio.gather(*(llm.achat(QUESTION, temperature=0) for _ in range(5)))

    replies = asyncio.run(main())
    assert {r.content for r in replies} == {"The capital of France is Paris."}
    assert len(cache) == 1
    assert llm.chat(QUESTION, temperature=0).metadata["cache"] == "hit"
    assert rig.upstream() == 5


class Broken:
    include_nonzero_temperature = False

    def get(self, key: str) -> ChatResponse | None:
        raise ConnectionError("store down")

    def set(self, key: str, reply: ChatResponse) -> None:
        raise ConnectionError("store down")


def test_a_failing_store_is_a_miss_with_an_event_never_a_failed_call(rig: Rig) -> None:
    llm = rig.engine(cache=Broken())
    assert llm.chat(QUESTION, temperature=0).content == "The capital of France is Paris."
    assert llm.chat(QUESTION, temperature=0).metadata["cache"] == "miss"
    assert [(e.route, e.operation, e.error) for e in rig.of(CacheUnavailable)] == [
        ("cache", "get", "ConnectionError"),
        ("cache", "set", "ConnectionError"),
    ] * 2
    assert rig.upstream() == 2


def test_public_names() -> None:
    import resilient_llm.extras.cache as module
    from resilient_llm.state.redis import cache as redis_cache

    assert sorted(module.__all__) == [
        "CacheFront",
        "CacheStatus",
        "CacheStore",
        "Lookup",
        "ResponseCache",
        "cache_key",
        "dump_response",
        "key_material",
        "load_response",
        "replay_chunk",
        "seconds_or_none",
    ]
    assert redis_cache.__all__ == ["RedisCache"]
    for name in module.__all__:
        assert hasattr(module, name)
