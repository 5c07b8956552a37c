"""The chaos providers answer a request that continues a broken answer with its rest, and
the Anthropic protocol refuses the prefills the real API refuses (real SDKs over HTTP)."""

from __future__ import annotations

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from resilient_llm.testing.chaos.brain import Ask, Turn, answer

from .sdk import PROMPT

ANSWER = "The capital of France is Paris."


def test_the_brain_gives_the_rest_after_a_prefill_or_an_instruction() -> None:
    start = (Turn("user", PROMPT), Turn("assistant", "The capital"))
    assert answer(Ask(start)).text == " of France is Paris."
    asked = (*start, Turn("user", "Continue without repeating."))
    assert answer(Ask(asked)).text == "capital of France is Paris."  # the last word restated
    # A whole earlier answer is a conversation, not a start to continue.
    whole = (Turn("user", PROMPT), Turn("assistant", ANSWER), Turn("user", PROMPT))
    assert answer(Ask(whole)).text == ANSWER


def test_openai_continues_after_an_instruction(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "user", "content": PROMPT},
            {"role": "assistant", "content": "The capital of "},
            {"role": "user", "content": "Continue without repeating."},
        ],
    )
    assert reply.choices[0].message.content == "of France is Paris."


def test_anthropic_continues_a_prefill(ant: anthropic.Anthropic) -> None:
    reply = ant.messages.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=[
            {"role": "user", "content": PROMPT},
            {"role": "assistant", "content": "The capital of"},
        ],
    )
    assert reply.content[0].text == " France is Paris."  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("model", "prefill", "refusal"),
    [
        ("claude-opus-4-6", "The capital", "Prefilling assistant messages is not supported"),
        ("claude-haiku-4-5", "The capital ", "cannot end with trailing whitespace"),
    ],
)
def test_anthropic_refuses_what_the_real_api_refuses(
    ant: anthropic.Anthropic, model: str, prefill: str, refusal: str
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=refusal):
        ant.messages.create(
            model=model,
            max_tokens=64,
            messages=[
                {"role": "user", "content": PROMPT},
                {"role": "assistant", "content": prefill},
            ],
        )


def test_gemini_continues_a_model_turn(gem: genai.Client) -> None:
    reply = gem.models.generate_content(
        model="gemini-2.5-flash",
        contents=[
            types.Content(role="user", parts=[types.Part(text=PROMPT)]),
            types.Content(role="model", parts=[types.Part(text="The capital of France")]),
        ],
    )
    assert reply.text == " is Paris."
