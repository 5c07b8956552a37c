"""Every LLM method, sync and async, streaming included, with each family as the primary."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from .conftest import Routes

FRANCE = [ChatMessage(role=MessageRole.USER, content="What is the capital of France?")]
PROMPT = "What is the capital of France?"
PARIS = "The capital of France is Paris."


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


MULTIPLY = FunctionTool.from_defaults(fn=multiply)
ASK_TOOL = "Multiply 6 and 7 with the tool."


class City(BaseModel):
    """A city and the country it is in."""

    name: str
    country: str


CITY_PROMPT = PromptTemplate("Name the city: 'Lyon' in 'France'. {hint}")


def _answered_by_primary(routes: Routes, response: ChatResponse | CompletionResponse) -> None:
    assert response.raw is not None
    assert response.raw["provider"] == routes.primary
    usage = response.additional_kwargs
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


# -- chat ----------------------------------------------------------------------------------


def test_chat(routes: Routes) -> None:
    response = routes.llm().chat(FRANCE)
    assert response.message.role == MessageRole.ASSISTANT
    assert response.message.content == PARIS
    _answered_by_primary(routes, response)
    assert response.raw is not None
    assert response.raw["attempt_count"] == 1
    assert response.raw["failovers"] == []


async def test_achat(routes: Routes) -> None:
    response = await routes.llm().achat(FRANCE)
    assert response.message.content == PARIS
    _answered_by_primary(routes, response)


def test_stream_chat(routes: Routes) -> None:
    chunks = list(routes.llm().stream_chat(FRANCE))
    assert len(chunks) > 1
    assert "".join(c.delta or "" for c in chunks) == PARIS
    assert chunks[-1].message.content == PARIS
    _answered_by_primary(routes, chunks[-1])


async def test_astream_chat(routes: Routes) -> None:
    chunks = [c async for c in await routes.llm().astream_chat(FRANCE)]
    assert "".join(c.delta or "" for c in chunks) == PARIS
    assert chunks[-1].message.content == PARIS
    _answered_by_primary(routes, chunks[-1])


def test_chat_fails_over_to_the_fallback(routes: Routes) -> None:
    routes.fail_primary("rate_limit")
    response = routes.llm().chat(FRANCE)
    assert response.message.content == PARIS
    assert response.raw is not None
    assert response.raw["provider"] == routes.fallback
    assert response.raw["failovers"][0]["from"] == routes.primary
    assert routes.calls() == [(routes.primary, 429), (routes.fallback, 200)]


# -- complete ------------------------------------------------------------------------------


def test_complete(routes: Routes) -> None:
    response = routes.llm().complete(PROMPT)
    assert response.text == PARIS
    _answered_by_primary(routes, response)


async def test_acomplete(routes: Routes) -> None:
    response = await routes.llm().acomplete(PROMPT)
    assert response.text == PARIS
    _answered_by_primary(routes, response)


def test_stream_complete(routes: Routes) -> None:
    chunks = list(routes.llm().stream_complete(PROMPT))
    assert "".join(c.delta or "" for c in chunks) == PARIS
    assert chunks[-1].text == PARIS
    _answered_by_primary(routes, chunks[-1])


async def test_astream_complete(routes: Routes) -> None:
    chunks = [c async for c in await routes.llm().astream_complete(PROMPT)]
    assert "".join(c.delta or "" for c in chunks) == PARIS
    _answered_by_primary(routes, chunks[-1])


def test_predict_uses_the_system_prompt_and_options(routes: Routes) -> None:
    llm = routes.llm(system_prompt="Be brief.", temperature=0.0, max_tokens=50)
    assert llm.predict(PromptTemplate("What is the capital of {country}?"), country="France") == (
        PARIS
    )


# -- tools ---------------------------------------------------------------------------------


def _tool_blocks(message: ChatMessage) -> list[ToolCallBlock]:
    return [b for b in message.blocks if isinstance(b, ToolCallBlock)]


def test_chat_with_tools_and_the_tool_result(routes: Routes) -> None:
    llm = routes.llm()
    response = llm.chat_with_tools([MULTIPLY], user_msg=ASK_TOOL)
    (block,) = _tool_blocks(response.message)
    assert (block.tool_name, block.tool_kwargs) == ("multiply", {"a": 6, "b": 7})
    assert response.message.additional_kwargs["tool_calls"][0]["function"]["name"] == "multiply"
    (selection,) = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("multiply", {"a": 6, "b": 7})
    assert selection.tool_id == block.tool_call_id

    history = [
        ChatMessage(role=MessageRole.USER, content=ASK_TOOL),
        response.message,
        ChatMessage(
            role=MessageRole.TOOL,
            content=str(MULTIPLY.call(**selection.tool_kwargs)),
            additional_kwargs={"tool_call_id": selection.tool_id},
        ),
    ]
    final = llm.chat_with_tools([MULTIPLY], chat_history=history)
    # Gemini wraps a tool result in an object ({"result": 42}); the others pass it as is.
    assert final.message.content is not None
    assert final.message.content.startswith("The tool returned:")
    assert "42" in final.message.content
    assert llm.get_tool_calls_from_response(final, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="at least one tool call"):
        llm.get_tool_calls_from_response(final)


async def test_achat_with_tools(routes: Routes) -> None:
    llm = routes.llm()
    response = await llm.achat_with_tools([MULTIPLY], user_msg=ASK_TOOL, tool_required=True)
    (selection,) = llm.get_tool_calls_from_response(response)
    assert selection.tool_kwargs == {"a": 6, "b": 7}
    assert (await llm.apredict_and_call([MULTIPLY], user_msg=ASK_TOOL)).response == "42"
    assert llm.predict_and_call([MULTIPLY], user_msg=ASK_TOOL).response == "42"


def test_stream_chat_with_tools(routes: Routes) -> None:
    llm = routes.llm()
    chunks = list(llm.stream_chat_with_tools([MULTIPLY], user_msg=ASK_TOOL))
    (selection,) = llm.get_tool_calls_from_response(chunks[-1])
    assert (selection.tool_name, selection.tool_kwargs) == ("multiply", {"a": 6, "b": 7})


async def test_astream_chat_with_tools(routes: Routes) -> None:
    llm = routes.llm()
    stream = await llm.astream_chat_with_tools([MULTIPLY], user_msg=ASK_TOOL)
    chunks = [c async for c in stream]
    (selection,) = llm.get_tool_calls_from_response(chunks[-1])
    assert selection.tool_kwargs == {"a": 6, "b": 7}


def test_tool_choice_forms(openai_routes: Routes) -> None:
    llm = openai_routes.llm()
    forced = {"type": "function", "function": {"name": "multiply"}}
    kwargs: dict[str, Any] = llm._prepare_chat_with_tools([MULTIPLY], ASK_TOOL, tool_choice=forced)
    assert kwargs["tool_choice"] == "multiply"
    assert llm._prepare_chat_with_tools([MULTIPLY], ASK_TOOL)["tool_choice"] == "auto"
    required = llm._prepare_chat_with_tools([MULTIPLY], ASK_TOOL, tool_required=True)
    assert required["tool_choice"] == "required"
    assert kwargs["tools"][0].parameters["required"] == ["a", "b"]


# -- structured prediction -----------------------------------------------------------------


def test_structured_predict(routes: Routes) -> None:
    city = routes.llm().structured_predict(City, CITY_PROMPT, hint="")
    assert city == City(name="Lyon", country="France")


async def test_astructured_predict(routes: Routes) -> None:
    city = await routes.llm().astructured_predict(City, CITY_PROMPT, hint="")
    assert city == City(name="Lyon", country="France")


def test_stream_structured_predict(routes: Routes) -> None:
    partials = list(routes.llm().stream_structured_predict(City, CITY_PROMPT, hint=""))
    last = partials[-1]
    assert isinstance(last, BaseModel)
    assert City.model_validate(last.model_dump()) == City(name="Lyon", country="France")


async def test_astream_structured_predict(routes: Routes) -> None:
    stream = await routes.llm().astream_structured_predict(City, CITY_PROMPT, hint="")
    partials = [p async for p in stream]
    assert City.model_validate(partials[-1].model_dump()) == City(name="Lyon", country="France")
