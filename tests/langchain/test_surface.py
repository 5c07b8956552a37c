"""What a ChatOpenAI / ChatAnthropic user reaches for: ``model_name``, ``profile``, offline
token counts, ``stream_usage`` and the engine's ``snapshot()``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import base as lc_base
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.tools import tool

from langchain_resilient import ChatResilientLLM
from resilient_llm import (
    Capabilities,
    ChatRequest,
    FakeClock,
    Message,
    Provider,
    RetryPolicy,
    Tool,
    estimate_tokens,
)
from resilient_llm.policies.tokens import DEFAULT_OUTPUT_RESERVE
from resilient_llm.testing.chaos import ChaosServer

from ._chaos import provider

QUESTION = "What is the capital of France?"


@pytest.fixture
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _offline(*routes: Provider, **options: Any) -> ChatResilientLLM:
    return ChatResilientLLM(providers=list(routes), **options)


def _model(server: ChaosServer, *kinds: str, **options: Any) -> ChatResilientLLM:
    return ChatResilientLLM(
        providers=[provider(k, server) for k in kinds],
        retry=RetryPolicy(max_retries=0),
        clock=FakeClock(),
        timeout=20,
        **options,
    )


# -- model_name ------------------------------------------------------------------------


def test_model_name_is_the_primarys_model_and_the_reply_names_the_answering_one(
    server: ChaosServer,
) -> None:
    model = _model(server, "openai", "anthropic")
    assert model.model_name == "gpt-4o-mini"
    assert ChatResilientLLM(engine=model.resilient_engine, model="gpt-4.1").model_name == (
        "gpt-4.1"
    )
    server.script("openai", "overloaded")
    reply = model.invoke(QUESTION)
    assert reply.response_metadata["model_name"] == "claude-haiku-4-5"
    assert reply.response_metadata["provider"] == "anthropic"


# -- profile ---------------------------------------------------------------------------


def test_profile_is_what_every_route_can_take() -> None:
    model = _offline(
        Provider("openai", "gpt-4o-mini", api_key="k"),
        Provider("anthropic", "claude-haiku-4-5", api_key="k"),
    )
    assert model.profile == {
        "text_inputs": True,
        "text_outputs": True,
        "video_inputs": False,
        "max_input_tokens": 128_000,  # gpt-4o-mini's window, the smaller
        "max_output_tokens": 16_384,
        "tool_calling": True,
        "tool_choice": True,
        "structured_output": True,
        "image_inputs": True,
        "image_url_inputs": True,
        "image_tool_message": True,
        "pdf_inputs": True,
        "pdf_tool_message": True,
        "audio_inputs": False,
        "reasoning_output": False,  # gpt-4o-mini does not reason; Claude Haiku 4.5 does
    }


def test_profile_follows_the_table_overrides_and_model() -> None:
    gemini = _offline(Provider("gemini", "gemini-2.5-flash", api_key="k"))
    assert gemini.profile is not None
    assert gemini.profile["audio_inputs"] is True
    assert gemini.profile["reasoning_output"] is True
    assert gemini.profile["max_input_tokens"] == 1_048_576
    # A route's own override counts, as the engine counts it.
    narrowed = _offline(
        Provider(
            "gemini",
            "gemini-2.5-flash",
            api_key="k",
            capabilities=Capabilities(context_window=32_000),
        )
    )
    assert narrowed.profile is not None
    assert narrowed.profile["max_input_tokens"] == 32_000
    # model= replaces the primary's model in the profile too.
    thinker = _offline(Provider("openai", "gpt-4o-mini", api_key="k"), model="o3-mini")
    assert thinker.profile is not None
    assert thinker.profile["reasoning_output"] is True
    assert thinker.profile["max_input_tokens"] == 200_000


def test_a_route_the_table_does_not_know_leaves_its_limits_out() -> None:
    model = _offline(
        Provider("openai", "gpt-4o-mini", api_key="k"),
        Provider("openai", "meta/llama-x", name="router", base_url="https://r.example/v1"),
    )
    assert model.profile is not None
    assert "max_input_tokens" not in model.profile
    assert "tool_calling" not in model.profile
    assert model.profile["audio_inputs"] is False  # known to be missing on one route


def test_a_profile_given_is_kept() -> None:
    model = _offline(
        Provider("openai", "gpt-4o-mini", api_key="k"), profile={"tool_calling": False}
    )
    assert model.profile == {"tool_calling": False}


# -- token counts -------------------------------------------------------------------------


@pytest.fixture
def no_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> Any:
        raise AssertionError("LangChain's GPT-2 tokenizer (transformers) was asked for")

    monkeypatch.setattr(lc_base, "get_tokenizer", refuse)


@pytest.mark.usefixtures("no_transformers")
def test_get_num_tokens_uses_the_engines_tokenizer_offline() -> None:
    model = _offline(Provider("openai", "gpt-4o-mini", api_key="k"))
    assert model.get_num_tokens("hello world") == 2  # o200k_base: "hello", " world"
    claude = _offline(Provider("anthropic", "claude-haiku-4-5", api_key="k"))
    assert claude.get_num_tokens("") == 0
    assert claude.get_num_tokens("hello world " * 50) > 50


@pytest.mark.usefixtures("no_transformers")
def test_get_num_tokens_from_messages_is_the_engines_prompt_estimate() -> None:
    model = _offline(Provider("openai", "gpt-4o-mini", api_key="k"))
    messages = [SystemMessage("Be brief."), HumanMessage(QUESTION)]
    wire = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
    expected = estimate_tokens(wire, "gpt-4o-mini") - DEFAULT_OUTPUT_RESERVE
    assert model.get_num_tokens_from_messages(messages) == expected


@pytest.mark.usefixtures("no_transformers")
def test_tools_are_counted_when_given() -> None:
    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    model = _offline(Provider("anthropic", "claude-haiku-4-5", api_key="k"))
    messages: list[BaseMessage] = [HumanMessage("What is 6 times 7?")]
    bare = model.get_num_tokens_from_messages(messages)
    with_tools = model.get_num_tokens_from_messages(messages, tools=[multiply])
    request = ChatRequest(
        messages=(Message("user", "What is 6 times 7?"),),
        model="claude-haiku-4-5",
        tools=(
            Tool(
                name="multiply",
                description="Multiply two integers.",
                parameters={
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                },
            ),
        ),
    )
    assert with_tools == estimate_tokens(request) - DEFAULT_OUTPUT_RESERVE
    assert with_tools > bare


def test_custom_get_token_ids_still_wins() -> None:
    model = _offline(
        Provider("openai", "gpt-4o-mini", api_key="k"),
        custom_get_token_ids=lambda text: list(range(len(text))),
    )
    assert model.get_num_tokens("hello") == 5


# -- stream_usage ------------------------------------------------------------------------


def _streamed(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    out = chunks[0]
    for chunk in chunks[1:]:
        out += chunk
    return out


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_streams_carry_usage_by_default(server: ChaosServer, kind: str) -> None:
    model = _model(server, kind)
    assert model.stream_usage is True
    chunks = list(model.stream(QUESTION))
    with_usage = [c for c in chunks if c.usage_metadata]
    assert len(with_usage) == 1, "usage is reported once, as ChatOpenAI reports it"
    assert with_usage[0] is not chunks[0]
    total = _streamed(chunks).usage_metadata
    assert total is not None
    assert total["input_tokens"] > 0
    assert total["output_tokens"] > 0


async def test_stream_usage_false_leaves_it_out(server: ChaosServer) -> None:
    quiet = _model(server, "openai", stream_usage=False)
    assert all(c.usage_metadata is None for c in quiet.stream(QUESTION))
    loud = _model(server, "anthropic")
    chunks = [c async for c in loud.astream(QUESTION, stream_usage=False)]
    assert all(c.usage_metadata is None for c in chunks)
    assert "".join(str(c.content) for c in chunks) == "The capital of France is Paris."
    # invoke keeps its usage: stream_usage is about chunks (and a call may carry it).
    reply = quiet.bind(stream_usage=False).invoke(QUESTION)
    assert isinstance(reply, AIMessage)
    assert reply.usage_metadata is not None


# -- snapshot ------------------------------------------------------------------------------


def test_snapshot_is_the_engines(server: ChaosServer) -> None:
    model = _model(server, "openai", "anthropic")
    server.script("openai", "overloaded")
    model.invoke(QUESTION)
    snapshot = model.snapshot()
    assert [r.name for r in snapshot] == ["openai", "anthropic"]
    assert snapshot.to_dict() == model.resilient_engine.snapshot().to_dict()
    assert snapshot["openai"].breaker.failures == 1
