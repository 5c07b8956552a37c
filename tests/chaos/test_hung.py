"""Hung providers as clients meet them: a request accepted and never answered, headers and
then silence, and a body that trickles in a byte at a time (each family, its own SDK)."""

from __future__ import annotations

import anthropic
import httpx2
import openai
import pytest
from google import genai

from resilient_llm.testing.chaos import ChaosServer, Fault

from .sdk import PROMPT, eventually

USER = [{"role": "user", "content": PROMPT}]
ANSWER = "The capital of France is Paris."
# Between two bytes of a trickle: short, so a whole reply arrives within the test.
BYTE_GAP = 0.001


def test_a_blackhole_never_answers_and_never_resets(chaos: ChaosServer, oai: openai.OpenAI) -> None:
    chaos.script("openai", "blackhole")
    with pytest.raises(openai.APITimeoutError):
        oai.with_options(timeout=0.3).chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert eventually(lambda: [(r.fault, r.status) for r in chaos.log] == [("blackhole", 0)])


def test_headers_then_silence_is_a_read_timeout_after_a_200(
    chaos: ChaosServer, ant: anthropic.Anthropic
) -> None:
    chaos.script("anthropic", "hang_after_headers", "hang_after_headers")
    with pytest.raises(anthropic.APITimeoutError):
        ant.with_options(timeout=0.3).messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=USER
        )
    # A stream's body is read while iterating, where the SDK lets the transport's own
    # timeout through unwrapped.
    with pytest.raises((anthropic.APITimeoutError, httpx2.ReadTimeout)):  # noqa: PT012
        stream = ant.with_options(timeout=0.3).messages.create(
            model="claude-haiku-4-5", max_tokens=50, messages=USER, stream=True
        )
        list(stream)
    assert eventually(lambda: len(chaos.log) == 2)
    assert [(r.fault, r.status) for r in chaos.log] == [("hang_after_headers", 200)] * 2


def test_a_trickled_reply_is_whole_when_it_arrives(
    chaos: ChaosServer, oai: openai.OpenAI, gem: genai.Client
) -> None:
    chaos.script("openai", Fault("trickle", delay=BYTE_GAP), Fault("trickle", delay=BYTE_GAP))
    reply = oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert reply.choices[0].message.content == ANSWER
    chunks = oai.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    chaos.script("gemini", Fault("trickle", delay=BYTE_GAP))
    answer = gem.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert answer.text == ANSWER
    assert [r.fault for r in chaos.log] == ["trickle"] * 3


@pytest.mark.parametrize("kind", ["blackhole", "hang_after_headers", "trickle"])
def test_the_hung_kinds_take_a_delay(kind: str) -> None:
    assert Fault.of({"kind": kind, "delay": 2}).delay == 2.0
