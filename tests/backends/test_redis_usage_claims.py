"""A provider's usage claim, settled in a real ``redis-server``, is bounded before it lands.

One reply claiming ``10**20`` tokens (past Redis's 64-bit integers) must neither break the
settle script nor fill the route's shared window: a second engine over the same Redis (a
second process) is admitted at once. The clamp is the engine's decision, made before either
state backend sees the figure, so memory and Redis settle alike.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

import resilient_llm.providers.openai.adapter  # noqa: F401 - SDK import outside any deadline
from resilient_llm import FakeClock, Provider, RateLimit, ResilientLLM, RetryPolicy
from resilient_llm.events import Event, LimiterWait, Settled
from resilient_llm.state.redis import RedisState

from ..providers.crafted import CraftedServer
from ..providers.hostile import OK, ok_answer

TPM = 50_000


@pytest.fixture(scope="module")
def crafted() -> Iterator[CraftedServer]:
    with CraftedServer() as server:
        yield server


def _claiming(tokens: int) -> object:
    body = json.loads(json.dumps(OK["openai"]))
    body["usage"] = {"prompt_tokens": tokens, "completion_tokens": tokens}
    answer = ok_answer("openai", body)
    usage = {"prompt_tokens": tokens, "completion_tokens": tokens}
    last = {"id": "c", "object": "chat.completion.chunk", "model": "gpt-x", "choices": []}
    events = (*answer.events[:-2], f"data: {json.dumps({**last, 'usage': usage})}\n\n")
    return type(answer)(body=answer.body, events=(*events, "data: [DONE]\n\n"))


@pytest.mark.parametrize("mode", ["chat", "achat", "stream", "astream"])
def test_a_claim_of_10_to_the_20_tokens_breaks_nothing_and_blocks_no_one(
    crafted: CraftedServer, redis_url: str, prefix: str, mode: str
) -> None:
    route = f"openai-claim-{mode}"
    crafted.answer(route, _claiming(10**20))  # type: ignore[arg-type]
    provider = Provider(
        "openai",
        "gpt-4o-mini",
        name=route,
        api_key="k",
        base_url=crafted.base_url(route, "openai"),
        rate_limit=RateLimit(tokens_per_minute=TPM),
    )
    events: list[Event] = []
    engines = []
    for _ in range(2):  # two processes sharing one Redis
        state = RedisState(redis_url, prefix=prefix)
        engines.append(
            ResilientLLM(
                [provider],
                state=state,
                retry=RetryPolicy(max_retries=0),
                clock=FakeClock(),
                on_event=events.append,
                timeout=10,
            )
        )
    try:
        first, second = engines
        _call(first, mode)
        (settled,) = [e for e in events if isinstance(e, Settled)]
        assert settled.actual_tokens == 2 * 10**20  # the event says what the provider claimed
        charged = first.snapshot()[route].limiter.estimated_tokens
        assert 0 < charged < TPM // 2
        assert second.snapshot()[route].limiter.estimated_tokens == charged  # one shared window
        _call(second, mode)
        assert [e for e in events if isinstance(e, LimiterWait)] == []
    finally:
        for llm in engines:
            llm.close()
            llm.state.close()


def _call(llm: ResilientLLM, mode: str) -> None:
    kwargs = {"max_tokens": 100}
    if mode == "chat":
        assert llm.chat("hi", **kwargs).content == "Hi"
    elif mode == "achat":
        assert asyncio.run(llm.achat("hi", **kwargs)).content == "Hi"
    elif mode == "stream":
        assert "".join(c.delta for c in llm.stream("hi", **kwargs)) == "Hi"
    else:

        async def drain() -> str:
            return "".join([c.delta async for c in llm.astream("hi", **kwargs)])

        assert asyncio.run(drain()) == "Hi"
