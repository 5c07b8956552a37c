"""A 200 that is not a message is a failed attempt: retried, then failed over.

Each case serves a family's recorded 200 (its real status and headers) around a body that
is no reply: ``{"malformed":"response"}``, or Gemini's ``{"candidates": []}`` with no
``promptFeedback.blockReason`` (a blocked prompt is a refusal, see test_refusals.py). The
route must count the attempt as ``ProviderUnavailable`` and the call must reach the
healthy route.
"""

from __future__ import annotations

import pytest

from .conftest import FALLBACK, MODES, STREAMS, Bench, answer
from .server import Recording

BODIES = {
    "malformed": '{"malformed":"response"}',
    "no-candidates": '{"candidates": []}',
}
CASES = [
    ("openai", "malformed"),
    ("anthropic", "malformed"),
    ("gemini", "malformed"),
    ("gemini", "no-candidates"),
]
# What the engine gets wrong until replies are validated: these return an empty success.


def _served(kind: str, body: str, mode: str) -> Recording:
    """The family's recorded 200 for ``mode`` around ``body`` (one SSE event in a stream)."""
    recorded = Recording.load(answer(kind, mode))
    if mode in STREAMS:
        end = "\r\n\r\n" if kind == "gemini" else "\n\n"
        body = f"data: {body}{end}"
    return recorded.with_body(body)


def _params() -> list[object]:
    out: list[object] = []
    for kind, case in CASES:
        for mode in MODES:
            out.append(pytest.param(kind, case, mode, id=f"{kind}-{case}-{mode}"))
    return out


@pytest.mark.parametrize(("kind", "case", "mode"), _params())
def test_a_200_that_is_no_reply_fails_over(bench: Bench, kind: str, case: str, mode: str) -> None:
    broken = bench.route(kind, "broken")
    good = bench.route(FALLBACK[kind], "healthy")
    served = _served(kind, BODIES[case], mode)
    bench.serve(broken, served, served)  # the attempt and its one retry
    bench.serve(good, answer(good.kind, mode))
    llm = bench.engine(broken, good)

    result = bench.run(llm, mode)
    assert result.provider == good.name
    assert result.text
    outcomes = [(a["route"], a["outcome"]) for a in result.metadata["attempts"]]
    assert outcomes == [
        (broken.name, "ProviderUnavailable"),
        (broken.name, "ProviderUnavailable"),
        (good.name, "ok"),
    ]
    assert len(bench.requests(broken)) == 2
