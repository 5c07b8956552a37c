"""The OpenAI Chat Completions wire protocol: ``POST {prefix}/v1/chat/completions``.

Beyond text and tool calls, replies show what the real API adds, by deterministic rules:

- usage details: a prompt of at least 1024 tokens reports its leading multiple of 128
  tokens as ``prompt_tokens_details.cached_tokens`` (as if its prefix had been sent
  before; OpenAI caches in 128-token steps from 1024), and a request that sent
  ``reasoning_effort`` reports ``completion_tokens_details.reasoning_tokens`` of
  :data:`REASONING_TOKENS` for that effort (counted in ``completion_tokens`` too);
- a model whose name holds ``"reasoner"`` (DeepSeek's ``deepseek-reasoner``, as vLLM serves
  reasoning models) shows its reasoning as ``reasoning_content`` before the answer;
- the brain's refusal is ``message.refusal`` with ``content: null`` (``refusal`` deltas in
  a stream), with ``finish_reason: "stop"``, as OpenAI sends it.

A content part of an unknown type, or ``reasoning_effort`` to gpt-4o, gpt-4.1, gpt-3.5
models, or ``reasoning_content`` sent back in an assistant message, is answered 400 as the
real APIs answer it (see ``openai_carried``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from .brain import Answer, Ask, ToolSpec, Turn, split_words
from .openai_carried import carried, check_request
from .wire import (
    ErrorKind,
    Exchange,
    Frames,
    QuotaView,
    WireError,
    json_body,
    positive_int,
    retry_headers,
    seconds_text,
    sse,
    text_of,
)

__all__ = ["REASONING_TOKENS", "OpenAIWire", "go_duration"]

_FINISH = {"stop": "stop", "tool": "tool_calls", "length": "length", "refusal": "stop"}
REASONING_TOKENS = {"minimal": 8, "low": 32, "medium": 128, "high": 512}
"""The reasoning tokens a reply reports for the ``reasoning_effort`` its request sent."""
_CACHE_FLOOR, _CACHE_STEP = 1024, 128
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def go_duration(seconds: float) -> str:
    """OpenAI's ``x-ratelimit-reset-*`` format: ``"20ms"``, ``"1.5s"``, ``"6m0s"``."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = seconds_text(rest) + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def _turns(messages: object) -> tuple[Turn, ...]:
    if not isinstance(messages, list) or not messages:
        raise WireError("'messages' must be a non-empty array.")
    turns: list[Turn] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise WireError(f"Invalid type for 'messages[{i}]': expected an object.")
        role, content = m.get("role"), text_of(m.get("content"))
        if role in ("tool", "function"):
            turns.append(Turn("tool", content))
        elif role == "assistant":
            calls = [json.dumps(c.get("function", {})) for c in m.get("tool_calls") or ()]
            turns.append(Turn("assistant", content + "".join(calls)))
        elif role in _ROLES:
            turns.append(Turn("user" if role == "user" else "system", content))
        else:
            raise WireError(f"Invalid value for 'messages[{i}].role': {role!r}.")
    return tuple(turns)


def _tools(body: Mapping[str, Any]) -> tuple[tuple[ToolSpec, ...], str | None]:
    specs = []
    for tool in body.get("tools") or ():
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            specs.append(ToolSpec(fn["name"], fn.get("parameters") or {}))
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        fn = choice.get("function")
        choice = fn.get("name") if isinstance(fn, dict) else "auto"
    return tuple(specs), choice if isinstance(choice, str) else None


class OpenAIWire:
    protocol = "openai"

    def parse(self, tail: str, query: Mapping[str, str], body: bytes) -> Exchange:
        if tail.strip("/") != "v1/chat/completions":
            raise WireError(f"Invalid URL (POST /{tail})", "not_found")
        data = json_body(body)
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise WireError("you must provide a model parameter")
        tools, choice = _tools(data)
        fmt = data.get("response_format")
        fmt = fmt if isinstance(fmt, dict) else {}
        schema = None
        if fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            schema = schema if isinstance(schema, dict) else {"type": "object"}
        max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
        ask = Ask(
            turns=_turns(data.get("messages")),
            tools=tools,
            tool_choice=choice,
            schema=schema,
            json_mode=fmt.get("type") == "json_object",
            max_tokens=positive_int(max_tokens, "max_tokens"),
        )
        check_request(data, model)
        options = data.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        effort = data.get("reasoning_effort")
        return Exchange(
            ask,
            model,
            bool(data.get("stream")),
            options={"include_usage": usage, "reasoning_effort": effort},
            carried=carried(data),
        )

    def _usage(self, ex: Exchange, answer: Answer) -> dict[str, Any]:
        prompt = answer.input_tokens
        cached = prompt - prompt % _CACHE_STEP if prompt >= _CACHE_FLOOR else 0
        thinking = REASONING_TOKENS.get(str(ex.options.get("reasoning_effort")), 0)
        completion = answer.output_tokens + thinking
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": thinking,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _reasoning(self, ex: Exchange) -> str:
        """What a reasoning model of an OpenAI-compatible server shows of its thinking."""
        if ex.model is None or "reasoner" not in ex.model.lower():
            return ""
        asked = next((t.text for t in reversed(ex.ask.turns) if t.role == "user"), "")
        return f"The user asks: {asked[:80]}. I answer briefly."

    def _calls(self, answer: Answer) -> list[dict[str, Any]]:
        return [
            {
                "id": f"call_{c.id}",
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in answer.calls
        ]

    def reply(self, ex: Exchange, answer: Answer) -> dict[str, Any]:
        refused = answer.stop == "refusal"
        message: dict[str, Any] = {
            "role": "assistant",
            "content": answer.text if (answer.text or not answer.calls) and not refused else None,
            "refusal": answer.refusal if refused else None,
            "annotations": [],
        }
        thinking = self._reasoning(ex)
        if thinking:
            message["reasoning_content"] = thinking
        if answer.calls:
            message["tool_calls"] = self._calls(answer)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": ex.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _FINISH[answer.stop],
                }
            ],
            "usage": self._usage(ex, answer),
            "service_tier": "default",
            "system_fingerprint": "fp_chaos",
        }

    def frames(self, ex: Exchange, answer: Answer) -> Frames:
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": ex.model,
            "system_fingerprint": "fp_chaos",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse({**base, "choices": [choice]})

        body: list[bytes] = []
        if answer.stop == "refusal":
            head = [chunk({"role": "assistant", "content": None, "refusal": ""})]
            body = [chunk({"refusal": piece}) for piece in split_words(answer.refusal or "")]
        else:
            head = [chunk({"role": "assistant", "content": "", "refusal": None})]
        thinking = self._reasoning(ex)
        body += [chunk({"reasoning_content": piece}) for piece in split_words(thinking, 2)]
        body += [chunk({"content": piece}) for piece in split_words(answer.text)]
        for index, call in enumerate(self._calls(answer)):
            fn = call["function"]
            start = {**call, "index": index, "function": {"name": fn["name"], "arguments": ""}}
            body.append(chunk({"tool_calls": [start]}))
            for piece in split_words(fn["arguments"], 2):
                args = {"index": index, "function": {"arguments": piece}}
                body.append(chunk({"tool_calls": [args]}))
        tail = [chunk({}, _FINISH[answer.stop])]
        if ex.options.get("include_usage"):
            tail.append(sse({**base, "choices": [], "usage": self._usage(ex, answer)}))
        tail.append(b"data: [DONE]\n\n")
        return Frames(head, body, tail)

    def count(self, ex: Exchange) -> dict[str, Any]:
        return {"input_tokens": ex.ask.input_tokens}

    def error(
        self,
        kind: ErrorKind,
        ex: Exchange | None,
        retry_after: float | None,
        message: str = "",
        violation: tuple[str, int] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        model = ex.model if ex else "unknown"
        wait = f" Please try again in {seconds_text(retry_after or 1)}s."
        status, text, type_, code, param = {
            "rate_limit": (
                429,
                f"Rate limit reached for {model} in organization org-chaos on requests "
                f"per min (RPM).{wait}",
                "requests",
                "rate_limit_exceeded",
                None,
            ),
            "overloaded": (
                503,
                "The engine is currently overloaded, please try again later.",
                "server_error",
                None,
                None,
            ),
            "server_error": (
                500,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
                None,
            ),
            "unavailable": (503, "Service Unavailable.", "server_error", None, None),
            "bad_request": (400, "Invalid request.", "invalid_request_error", None, None),
            "auth": (
                401,
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
                None,
            ),
            "not_found": (
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
                None,
            ),
            "context_length": (
                400,
                "This model's maximum context length is 128000 tokens. However, your "
                "messages resulted in 130000 tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                "context_length_exceeded",
                "messages",
            ),
        }[kind]
        error = {"message": message or text, "type": type_, "param": param, "code": code}
        return status, {"error": error}

    def stream_error(self) -> bytes:
        error = {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
        return sse({"error": error})

    def garbage(self) -> bytes:
        return b'data: {"id": "chatcmpl-chaos", "choices": [{"delta": \n\n'

    def headers(self, quota: QuotaView | None, retry_after: float | None) -> dict[str, str]:
        out = retry_headers(retry_after)
        out["x-request-id"] = f"req_{uuid.uuid4().hex[:24]}"
        if quota is None:
            return out
        for what in ("requests", "tokens"):
            limit = getattr(quota, f"limit_{what}")
            if limit is None:
                continue
            out[f"x-ratelimit-limit-{what}"] = str(limit)
            out[f"x-ratelimit-remaining-{what}"] = str(getattr(quota, f"remaining_{what}"))
            out[f"x-ratelimit-reset-{what}"] = go_duration(getattr(quota, f"reset_{what}"))
        return out
