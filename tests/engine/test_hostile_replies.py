"""Through the engine, a reply of the wrong shape is a failed attempt like a 503.

The primary route is a crafted loopback server answering every request with a hostile body
(``{"malformed": "response"}``, ``null``, HTML) or stream; the fallback is a healthy chaos
route of another family. In all four modes the engine must retry the primary (the failure
is retryable), count each attempt against its breaker, then fail over and answer from the
fallback. A provider's claimed usage is bounded by what the request could have cost.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import pytest

from resilient_llm import (
    ChatChunk,
    CircuitState,
    FakeClock,
    Provider,
    RateLimit,
    StreamInterrupted,
)
from resilient_llm.events import AttemptFinished, Failover, LimiterWait

from ..providers.crafted import Answer, CraftedServer, sse
from ..providers.hostile import BODIES, EVENTS, OK, ok_answer
from .conftest import ANSWER, ATTEMPTS_PER_ROUTE, FALLBACK, KINDS, MODES, Bench

_PREFIXES = itertools.count()


@pytest.fixture(scope="module")
def crafted() -> Iterator[CraftedServer]:
    with CraftedServer() as server:
        yield server


def _hostile(crafted: CraftedServer, kind: str, answer: Answer, **options: object) -> Provider:
    prefix = f"{kind}-x{next(_PREFIXES)}"
    crafted.answer(prefix, answer)
    return Provider(
        kind,  # type: ignore[arg-type]
        "chaos-model",
        name=prefix,
        api_key="test-key",
        base_url=crafted.base_url(prefix, kind),
        **options,  # type: ignore[arg-type]
    )


def _as_stream_too(answer: Answer) -> Answer:
    """The same hostile body, also as the only event of a stream."""
    return Answer(
        body=answer.body, content_type=answer.content_type, events=sse(answer.body.decode())
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", ["not_a_message", "null", "html"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_hostile_reply_is_retried_counted_and_failed_over(
    bench: Bench, crafted: CraftedServer, kind: str, case: str, mode: str
) -> None:
    primary = _hostile(crafted, kind, _as_stream_too(BODIES[kind][case]))
    fallback = bench.route(FALLBACK[kind], "fallback")
    llm = bench.engine(primary, fallback)

    result = bench.run(llm, mode)

    assert result.text == ANSWER
    assert result.providers == {fallback.name}
    assert crafted.hits(primary.name) == ATTEMPTS_PER_ROUTE
    outcomes = [e.outcome for e in bench.of(AttemptFinished) if e.route == primary.name]
    assert outcomes == ["ProviderUnavailable"] * ATTEMPTS_PER_ROUTE
    assert [(f.route, f.to_route) for f in bench.of(Failover)] == [(primary.name, fallback.name)]
    assert llm.snapshot()[primary.name].breaker.failures == ATTEMPTS_PER_ROUTE


def _check_failover(bench: Bench, crafted: CraftedServer, primary: Provider, mode: str) -> None:
    fallback = bench.route(FALLBACK[primary.kind], "fallback")
    llm = bench.engine(primary, fallback)
    result = bench.run(llm, mode)
    assert result.text == ANSWER
    assert result.providers == {fallback.name}
    assert crafted.hits(primary.name) == ATTEMPTS_PER_ROUTE
    assert llm.snapshot()[primary.name].breaker.failures == ATTEMPTS_PER_ROUTE


@pytest.mark.parametrize(
    ("kind", "case"), [(kind, case) for kind, cases in BODIES.items() for case in cases]
)
def test_every_hostile_body_fails_over_from_chat(
    bench: Bench, crafted: CraftedServer, kind: str, case: str
) -> None:
    _check_failover(bench, crafted, _hostile(crafted, kind, BODIES[kind][case]), "chat")


# Streams in which text reaches the caller before the malformed event.
AFTER_TEXT = {
    ("openai", "event_null"),
    ("openai", "event_string"),
    ("openai", "event_html"),
    ("openai", "usage_strings"),
    ("anthropic", "index_string"),
    ("anthropic", "usage_strings"),
    ("anthropic", "tool_name_null"),
    ("gemini", "event_html"),
    ("gemini", "usage_strings"),
}
_STREAM_CASES = [(kind, case) for kind, cases in EVENTS.items() for case in cases]


@pytest.mark.parametrize(("kind", "case"), _STREAM_CASES)
def test_every_hostile_stream_fails_over_or_is_interrupted(
    bench: Bench, crafted: CraftedServer, kind: str, case: str
) -> None:
    primary = _hostile(crafted, kind, EVENTS[kind][case])
    if (kind, case) not in AFTER_TEXT:
        _check_failover(bench, crafted, primary, "astream")
        return
    # Text already reached the caller: retrying would repeat it, so the stream is
    # interrupted, and the attempt still counts as the route's failure.
    llm = bench.engine(primary, bench.route(FALLBACK[kind], "fallback"))
    chunks: list[ChatChunk] = []
    with pytest.raises(StreamInterrupted) as info:
        bench.run(llm, "astream", chunks)
    assert info.value.partial_text.startswith("Hi")
    assert "malformed reply" in str(info.value) or "not valid JSON" in str(info.value)
    assert {c.provider for c in chunks} == {primary.name}
    assert crafted.hits(primary.name) == 1
    assert llm.snapshot()[primary.name].breaker.failures == 1


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_replies_open_the_breaker(bench: Bench, crafted: CraftedServer, kind: str) -> None:
    primary = _hostile(crafted, kind, _as_stream_too(BODIES[kind]["not_a_message"]))
    fallback = bench.route(FALLBACK[kind], "fallback")
    llm = bench.engine(primary, fallback)

    for mode in ("chat", "stream"):  # 2 + 2 failures: past the threshold of 3
        assert bench.run(llm, mode).text == ANSWER
    assert llm.snapshot()[primary.name].breaker.state is CircuitState.OPEN
    hits = crafted.hits(primary.name)
    assert bench.run(llm, "achat").text == ANSWER
    assert crafted.hits(primary.name) == hits  # skipped while open: no call


# -- usage a provider claims is bounded by what the request could have cost ------------


def _claiming(kind: str, tokens: int) -> Answer:
    body = json.loads(json.dumps(OK[kind]))
    if kind == "openai":
        body["usage"] = {"prompt_tokens": tokens, "completion_tokens": tokens}
    elif kind == "anthropic":
        body["usage"] = {"input_tokens": tokens, "output_tokens": tokens}
    else:
        body["usageMetadata"] = {"promptTokenCount": tokens, "candidatesTokenCount": tokens}
    return ok_answer(kind, body)


@pytest.mark.parametrize("kind", KINDS)
def test_a_reply_claiming_10_to_the_15_tokens_does_not_block_the_next_call(
    bench: Bench, crafted: CraftedServer, kind: str
) -> None:
    tpm = 50_000
    route = _hostile(
        crafted, kind, _claiming(kind, 10**15), rate_limit=RateLimit(tokens_per_minute=tpm)
    )
    clock = FakeClock()
    llm = bench.engine(route, clock=clock)

    first = llm.chat("What is the capital of France?", max_tokens=100)
    assert first.usage is not None
    assert first.usage.input_tokens == 10**15  # the reply says what the provider said
    charged = llm.snapshot()[route.name].limiter.estimated_tokens
    assert 0 < charged < tpm // 2

    second = llm.chat("What is the capital of France?", max_tokens=100)
    assert second.content == "Hi"
    assert bench.of(LimiterWait) == []  # admitted at once, not queued for a window
    assert clock.sleeps == []
