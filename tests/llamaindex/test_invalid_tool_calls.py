"""Tool calls whose arguments do not parse, as LlamaIndex's own integrations give them.

LlamaIndex keeps arguments it could not parse as their text (``ToolCallBlock.tool_kwargs``
is then a ``str``) and selects such a tool with no arguments
(``llama_index.llms.openai``'s ``get_tool_calls_from_response``). The text is not lost: sent
back in the history, the call is invalid again, and its text goes out verbatim.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest
from llama_index.core.base.llms.types import ChatMessage, ToolCallBlock
from llama_index.core.tools import FunctionTool

from llamaindex_resilient import ResilientLLM as LlamaLLM
from llamaindex_resilient._convert import to_messages
from resilient_llm import Provider, ResilientLLM, RetryPolicy

from ..providers.crafted import CraftedServer
from ..providers.hostile import ok_answer, openai_tool_arguments

BROKEN = "{'city': 'Paris'}"
_PREFIXES = itertools.count()


@pytest.fixture(scope="module")
def crafted() -> Iterator[CraftedServer]:
    with CraftedServer() as server:
        yield server


def _weather(city: str) -> str:
    """Weather for a city."""
    return "sunny"


TOOL = FunctionTool.from_defaults(fn=_weather, name="f")


def _llm(crafted: CraftedServer, answer: object) -> tuple[LlamaLLM, str]:
    prefix = f"openai-li{next(_PREFIXES)}"
    crafted.answer(prefix, answer)  # type: ignore[arg-type]
    provider = Provider(
        "openai", "model-x", name=prefix, api_key="k", base_url=crafted.base_url(prefix, "openai")
    )
    engine = ResilientLLM([provider], retry=RetryPolicy(max_retries=0), timeout=10)
    return LlamaLLM(engine=engine), prefix


@pytest.mark.parametrize("mode", ["chat", "achat", "stream", "astream"])
def test_a_broken_call_keeps_its_text_and_is_selected_without_arguments(
    crafted: CraftedServer, mode: str
) -> None:
    llm, _ = _llm(crafted, openai_tool_arguments(BROKEN))
    if mode == "chat":
        response = llm.chat_with_tools([TOOL], user_msg="weather?")
    elif mode == "achat":
        response = asyncio.run(llm.achat_with_tools([TOOL], user_msg="weather?"))
    elif mode == "stream":
        *_, response = llm.stream_chat_with_tools([TOOL], user_msg="weather?")
    else:

        async def last() -> object:
            stream = await llm.astream_chat_with_tools([TOOL], user_msg="weather?")
            responses = [response async for response in stream]
            return responses[-1]

        response = asyncio.run(last())  # type: ignore[assignment]
    (block,) = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
    assert (block.tool_call_id, block.tool_name, block.tool_kwargs) == ("t1", "f", BROKEN)
    (legacy,) = response.message.additional_kwargs["tool_calls"]
    assert legacy["function"]["arguments"] == BROKEN
    (selection,) = llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
    assert (selection.tool_id, selection.tool_name, selection.tool_kwargs) == ("t1", "f", {})


def test_sent_back_the_call_is_invalid_again_and_goes_out_verbatim(
    crafted: CraftedServer,
) -> None:
    llm, _ = _llm(crafted, openai_tool_arguments(BROKEN))
    answer = llm.chat_with_tools([TOOL], user_msg="weather?").message
    (call,) = to_messages([answer])[0].tool_calls
    assert call.invalid
    assert call.raw_arguments == BROKEN
    assert dict(call.arguments) == {}

    again, prefix = _llm(crafted, ok_answer("openai"))
    history = [
        ChatMessage(role="user", content="weather?"),
        answer,
        ChatMessage(role="tool", content="bad arguments", additional_kwargs={"tool_call_id": "t1"}),
    ]
    assert again.chat(history).message.content == "Hi"
    (body,) = crafted.bodies(prefix)
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == BROKEN
