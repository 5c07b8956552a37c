"""What we send back is what the real clients sent: recorded request bodies as the judge.

A tool loop's second request carries the first reply's reasoning back (Anthropic thinking
blocks with their signatures, redacted blocks, Gemini thought signatures on function
calls and text); the providers refuse the turn when these are missing or altered. Each
test takes a recorded first reply through the engine, builds the next turn from
``ChatResponse.message`` with the neutral types, sends it through the engine and the real
SDK, and compares what reached the replay server with the recorded second request (the
sub-structures that carry the feature, not the whole body). Media requests likewise:
our parts must reach the wire in the shape and with the bytes the recording shows.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from resilient_llm import Audio, Document, Image, Message, Text

from .conftest import QUESTION, Bench, Result, answer
from .server import Recording

CHATS = ("chat", "achat")


def _sent(bench: Bench, route: Any) -> Any:
    *_, last = bench.requests(route)
    return last.json()


def _camel(value: Any) -> Any:
    """Gemini field names in one spelling. The API reads JSON by the proto3 mapping, which
    takes both ``mime_type`` and ``mimeType``; google-genai versions differ in which they
    write for nested fields (the recording has ``mimeType``, 3.6 sends ``mime_type``)."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _without_ids(value: Any) -> Any:
    """Gemini call ids are the client's own (the API sends none); everything else counts."""
    if isinstance(value, dict):
        return {
            k: _without_ids(v) for k, v in value.items() if not (k == "id" and isinstance(v, str))
        }
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def _tool_results(recorded_turn: list[Any], calls: Any, key: str) -> list[Message]:
    """Tool messages answering ``calls`` with the recorded results, in order."""
    out = []
    for call, part in zip(calls, recorded_turn, strict=True):
        if key == "functionResponse":
            content = json.dumps(part[key]["response"])
        else:
            content = str(part["content"])
        out.append(Message("tool", content, tool_call_id=call.id, name=call.name))
    return out


# -- Anthropic ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", CHATS)
def test_anthropic_thinking_tool_loop_sends_the_block_back_as_recorded(
    bench: Bench, mode: str
) -> None:
    first = Recording.load("anthropic/message_thinking_tool_use")
    second = Recording.load("anthropic/message_thinking_tool_result")
    recorded = second.request
    route = bench.route("anthropic", "loop", recorded["model"])
    bench.serve(route, first, second)
    llm = bench.engine(route)
    tool = recorded["tools"][0]
    options: dict[str, Any] = {
        "tools": [{"name": tool["name"], "description": "x", "parameters": tool["input_schema"]}],
        "max_tokens": recorded["max_tokens"],
        "provider_options": {"anthropic": {"thinking": recorded["thinking"]}},
    }
    question = recorded["messages"][0]["content"][0]["text"]
    reply = bench.call(llm, mode, question, **options).response
    results = _tool_results(recorded["messages"][2]["content"], reply.tool_calls, "tool_result")
    history = [Message("user", question), reply.message, *results]
    answer = bench.call(llm, mode, history, **options).response

    sent = _sent(bench, route)
    # The assistant turn goes back block for block: thinking with its signature, text,
    # tool_use, as the recorded request has it.
    assert sent["messages"][1] == recorded["messages"][1]
    (result,) = sent["messages"][2]["content"]
    expected = recorded["messages"][2]["content"][0]
    assert (result["type"], result["tool_use_id"]) == (expected["type"], expected["tool_use_id"])
    assert _text_of(result["content"]) == expected["content"]
    assert sent["thinking"] == recorded["thinking"]
    assert answer.content == json.loads(second.body)["content"][0]["text"]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(block["text"] for block in content if block["type"] == "text")


@pytest.mark.parametrize("mode", CHATS)
def test_anthropic_redacted_thinking_goes_back_as_recorded(bench: Bench, mode: str) -> None:
    first = Recording.load("anthropic/message_redacted_thinking")
    second = Recording.load("anthropic/message_redacted_thinking_next")
    recorded = second.request
    route = bench.route("anthropic", "loop", recorded["model"])
    bench.serve(route, first, second)
    llm = bench.engine(route)
    options = {"provider_options": {"anthropic": {"thinking": recorded["thinking"]}}}
    question = recorded["messages"][0]["content"][0]["text"]
    reply = bench.call(llm, mode, question, **options).response
    follow_up = recorded["messages"][2]["content"][0]["text"]
    bench.call(llm, mode, [Message("user", question), reply.message, Message("user", follow_up)])

    sent = _sent(bench, route)
    assert sent["messages"][1] == recorded["messages"][1]


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_anthropic_streamed_thinking_goes_back_like_a_whole_reply(bench: Bench, mode: str) -> None:
    """A streamed block, joined, goes back in the shape of a recorded thinking block."""
    stream = Recording.load("anthropic/stream_thinking")
    shape = Recording.load("anthropic/message_thinking_tool_result").request["messages"][1]
    route = bench.route("anthropic", "loop", "claude-sonnet-4-0")
    bench.serve(route, stream, "anthropic/stream_text")
    llm = bench.engine(route)
    first: Result = bench.call(llm, mode, "How do I cross the street?")
    reply = first.response
    bench.call(llm, mode, [Message("user", "How do I cross the street?"), reply.message])

    sent = _sent(bench, route)
    thinking, text = sent["messages"][1]["content"]
    assert sorted(thinking) == sorted(shape["content"][0])  # the recorded block's keys
    assert thinking["type"] == "thinking"
    (block,) = reply.reasoning
    assert (thinking["thinking"], thinking["signature"]) == (block.text, block.signature)
    assert text == {"type": "text", "text": reply.content}


def _media_case(bench: Bench, kind: str, name: str, part: Any, model: str) -> tuple[Any, Any]:
    recording = Recording.load(name)
    route = bench.route(kind, "media", model)
    bench.serve(route, recording)
    question = _question(kind, recording.request)
    bench.call(bench.engine(route), "chat", [Message("user", (Text(question), part))])
    return _sent(bench, route), recording.request


def _question(kind: str, recorded: Any) -> str:
    if kind == "gemini":
        return str(recorded["contents"][-1]["parts"][0]["text"])
    return str(recorded["messages"][-1]["content"][0]["text"])


def test_anthropic_pdf_bytes_go_as_a_base64_document_block(bench: Bench) -> None:
    recorded = Recording.load("anthropic/message_document_base64").request
    block = recorded["messages"][0]["content"][1]
    pdf = Document(data=base64.b64decode(block["source"]["data"]))
    sent, recorded = _media_case(
        bench, "anthropic", "anthropic/message_document_base64", pdf, "claude-sonnet-4-5"
    )
    assert sent["messages"][-1]["content"] == recorded["messages"][-1]["content"]


def test_anthropic_image_url_goes_as_a_url_source(bench: Bench) -> None:
    recorded = Recording.load("anthropic/message_image_url").request
    url = recorded["messages"][0]["content"][1]["source"]["url"]
    sent, recorded = _media_case(
        bench, "anthropic", "anthropic/message_image_url", Image(url=url), "claude-haiku-4-5"
    )
    assert sent["messages"][-1]["content"] == recorded["messages"][-1]["content"]


def test_anthropic_cache_control_on_a_block_goes_as_recorded(bench: Bench) -> None:
    """A ``cache_control`` marker on a text part is sent on that block, as ChatAnthropic
    users set it (the recorded request also has a mid-conversation system turn of the
    client's own, not ours: only the marked assistant block is compared)."""
    recording = Recording.load("anthropic/message_cache_control")
    recorded = recording.request
    route = bench.route("anthropic", "cache", "claude-sonnet-4-5")
    bench.serve(route, recording)
    marked = recorded["messages"][1]["content"][0]
    history = [
        Message("system", recorded["system"]),
        Message("user", recorded["messages"][0]["content"][0]["text"]),
        Message("assistant", (Text(marked["text"], cache_control=marked["cache_control"]),)),
        Message("user", recorded["messages"][2]["content"][0]["text"]),
    ]
    bench.call(bench.engine(route), "chat", history)

    sent = _sent(bench, route)
    assert sent["messages"][1] == recorded["messages"][1]
    assert sent["system"] == recorded["system"]


# -- Gemini -------------------------------------------------------------------------------


def _gemini_loop(
    bench: Bench, modes: tuple[str, str], first: str, second: str, model: str
) -> tuple[Any, Any, Any]:
    """The recorded first turn, its reply's message, the recorded tool results; what was
    sent second and the recorded second request."""
    one, two = Recording.load(first), Recording.load(second)
    recorded = two.request
    route = bench.route("gemini", "loop", model)
    bench.serve(route, one, two)
    llm = bench.engine(route)
    tools = [
        {
            "name": d["name"],
            "description": d.get("description", ""),
            "parameters": d["parameters_json_schema"],
        }
        for d in recorded["tools"][0]["functionDeclarations"]
    ]
    question = recorded["contents"][0]["parts"][0]["text"]
    reply = bench.call(llm, modes[0], question, tools=tools).response
    results = _tool_results(recorded["contents"][2]["parts"], reply.tool_calls, "functionResponse")
    history = [Message("user", question), reply.message, *results]
    answer = bench.call(llm, modes[1], history, tools=tools).response
    return _sent(bench, route), recorded, answer


@pytest.mark.parametrize("mode", CHATS)
def test_gemini_function_call_signature_goes_back_as_recorded(bench: Bench, mode: str) -> None:
    sent, recorded, _ = _gemini_loop(
        bench,
        (mode, mode),
        "gemini/generate_function_call",
        "gemini/generate_function_call_next",
        "gemini-2.5-pro",
    )
    assert _camel(_without_ids(sent["contents"][1])) == _camel(
        _without_ids(recorded["contents"][1])
    )
    # The tool result answers the call by name, with the recorded response object.
    assert _camel(_without_ids(sent["contents"][2])) == _camel(
        _without_ids(recorded["contents"][2])
    )


def test_gemini_parallel_calls_keep_the_signature_on_the_first_call_only(bench: Bench) -> None:
    sent, recorded, _ = _gemini_loop(
        bench,
        ("chat", "chat"),
        "gemini/generate_parallel_calls",
        "gemini/generate_parallel_calls_next",
        "gemini-3-flash-preview",
    )
    assert _camel(_without_ids(sent["contents"][1])) == _camel(
        _without_ids(recorded["contents"][1])
    )


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_gemini_streamed_call_signature_goes_back_as_recorded(bench: Bench, mode: str) -> None:
    sent, recorded, answer = _gemini_loop(
        bench,
        (mode, mode),
        "gemini/stream_function_call",
        "gemini/stream_function_call_next",
        "gemini-3-pro-preview",
    )
    assert _camel(_without_ids(sent["contents"][1])) == _camel(
        _without_ids(recorded["contents"][1])
    )
    assert answer.content.startswith("The capital of Mexico")


@pytest.mark.parametrize("mode", CHATS)
def test_gemini_thought_and_signed_text_go_back_as_recorded(bench: Bench, mode: str) -> None:
    first = Recording.load("gemini/generate_thinking")
    second = Recording.load("gemini/generate_thinking_next")
    recorded = second.request
    route = bench.route("gemini", "loop", "gemini-3-pro-preview")
    bench.serve(route, first, second)
    llm = bench.engine(route)
    question = recorded["contents"][0]["parts"][0]["text"]
    reply = bench.call(llm, mode, question).response
    follow_up = recorded["contents"][2]["parts"][0]["text"]
    bench.call(llm, mode, [Message("user", question), reply.message, Message("user", follow_up)])

    sent = _sent(bench, route)
    # The thought summary as a thought part, the signature on the part it came with.
    assert _camel(sent["contents"][1]) == _camel(recorded["contents"][1])


def _inline(recorded: Any) -> tuple[str, bytes]:
    part = recorded["contents"][-1]["parts"][1]["inlineData"]
    return part["mimeType"], base64.urlsafe_b64decode(part["data"])


def test_gemini_image_bytes_go_as_inline_data(bench: Bench) -> None:
    mime, data = _inline(Recording.load("gemini/generate_image_inline").request)
    sent, recorded = _media_case(
        bench,
        "gemini",
        "gemini/generate_image_inline",
        Image(data=data, mime_type=mime),
        "gemini-2.5-flash",
    )
    assert _camel(sent["contents"][-1]) == _camel(recorded["contents"][-1])


def test_gemini_pdf_bytes_go_as_inline_data(bench: Bench) -> None:
    mime, data = _inline(Recording.load("gemini/generate_document_inline").request)
    sent, recorded = _media_case(
        bench,
        "gemini",
        "gemini/generate_document_inline",
        Document(data=data, mime_type=mime),
        "gemini-2.5-flash",
    )
    assert _camel(sent["contents"][-1]) == _camel(recorded["contents"][-1])


# -- OpenAI chat completions ----------------------------------------------------------------


def test_openai_audio_bytes_go_as_input_audio(bench: Bench) -> None:
    recorded = Recording.load("openai/chat_audio_input").request
    audio = recorded["messages"][-1]["content"][1]["input_audio"]
    part = Audio(data=base64.b64decode(audio["data"]), mime_type="audio/mpeg")
    assert audio["format"] == "mp3"
    sent, recorded = _media_case(
        bench, "openai", "openai/chat_audio_input", part, "gpt-4o-audio-preview"
    )
    assert sent["messages"][-1]["content"] == recorded["messages"][-1]["content"]


def test_openai_pdf_bytes_go_as_a_file_part(bench: Bench) -> None:
    recorded = Recording.load("openai/chat_file_input").request
    file = recorded["messages"][-1]["content"][1]["file"]
    data = base64.b64decode(file["file_data"].split(",", 1)[1])
    part = Document(data=data, name=file["filename"])
    sent, recorded = _media_case(bench, "openai", "openai/chat_file_input", part, "gpt-4o")
    assert sent["messages"][-1]["content"] == recorded["messages"][-1]["content"]


def test_openai_image_url_goes_as_an_image_url_part(bench: Bench) -> None:
    recorded = Recording.load("openai/chat_image_url_input").request
    url = recorded["messages"][-1]["content"][1]["image_url"]["url"]
    sent, recorded = _media_case(
        bench, "openai", "openai/chat_image_url_input", Image(url=url), "gpt-5-mini"
    )
    assert sent["messages"][-1]["content"] == recorded["messages"][-1]["content"]


# -- Across families ------------------------------------------------------------------------

BAD_KEY = {
    "anthropic": "anthropic/401_authentication_error",
    "gemini": "gemini/400_api_key_invalid",
}
# A recorded signed first turn per family: (recording, model, tool)
SIGNED = {
    "anthropic": ("anthropic/message_thinking_tool_use", "claude-sonnet-4-0", "get_user_country"),
    "gemini": ("gemini/generate_function_call", "gemini-2.5-pro", "get_capital"),
}
CROSSINGS = [(s, t) for s in SIGNED for t in ("openai", "anthropic", "gemini") if t != s]


@pytest.mark.parametrize(("source", "target"), CROSSINGS, ids=["-".join(c) for c in CROSSINGS])
def test_a_failover_mid_loop_carries_no_signature_to_another_family(
    bench: Bench, source: str, target: str
) -> None:
    """The signed first turn goes back to its own family as received; when that route
    fails over, the other family gets the turn's text and calls, and no reasoning."""
    name, model, tool = SIGNED[source]
    issued = bench.route(source, "issuer", model)
    other = bench.route(target, "other")
    bench.serve(issued, name, BAD_KEY[source])
    bench.serve(other, answer(target, "chat"))
    llm = bench.engine(issued, other)
    tools = [{"name": tool, "description": "look up", "parameters": {"type": "object"}}]
    reply = bench.call(llm, "chat", QUESTION, tools=tools).response
    assert reply.provider == issued.name
    signatures = [r.signature for r in reply.reasoning if r.signature]
    signatures += [c.signature for c in reply.tool_calls if c.signature]
    assert signatures
    results = [Message("tool", "Mexico", tool_call_id=c.id, name=c.name) for c in reply.tool_calls]
    answered = bench.call(
        llm, "chat", [Message("user", QUESTION), reply.message, *results], tools=tools
    )
    assert answered.provider == other.name

    back, moved = bench.requests(issued)[-1].body, bench.requests(other)[-1].body
    for signature in signatures:
        # The same family got it back (Gemini's SDK writes it URL-safe); the other did not.
        forms = {signature, signature.replace("+", "-").replace("/", "_")}
        assert any(f.encode() in back for f in forms)
        assert not any(f.encode() in moved for f in forms)
    sent = json.dumps(json.loads(moved))
    for block in reply.reasoning:
        if block.text:
            assert json.dumps(block.text)[1:-1] not in sent
    assert tool in sent
    assert json.dumps(reply.content)[1:-1] in sent
