"""The Gemini API wire protocol: ``POST {prefix}/{v1,v1beta}/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse`` and ``:countTokens``.

The real service sends no rate-limit headers; its 429 carries a ``google.rpc.RetryInfo``
detail, and so does every error here that has a ``retry_after``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from .brain import Answer, Ask, ToolSpec, Turn, split_words
from .wire import (
    ErrorKind,
    Exchange,
    Frames,
    QuotaView,
    WireError,
    json_body,
    positive_int,
    seconds_text,
    sse,
)

__all__ = ["GeminiWire"]

_PATH_RE = re.compile(
    r"(v1|v1beta|v1alpha)/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)"
)
_FINISH = {"stop": "STOP", "tool": "STOP", "length": "MAX_TOKENS"}
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def _get(obj: object, name: str) -> Any:
    """Field ``name`` (lowerCamelCase) of a proto-JSON object, also under its snake_case
    name: protobuf's JSON parser accepts both, and google-genai sends some fields snake_case
    (``parameters_json_schema``)."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    return obj.get(re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name))


def _part_turn(role: str, part: object) -> Turn:
    if (response := _get(part, "functionResponse")) is not None:
        result = response.get("response") if isinstance(response, dict) else response
        return Turn("tool", json.dumps(result))
    if (call := _get(part, "functionCall")) is not None:
        return Turn("assistant", json.dumps(call))
    text = str(_get(part, "text") or "")
    return Turn("assistant", text) if role == "model" else Turn("user", text)


def _turns(data: Mapping[str, Any]) -> tuple[Turn, ...]:
    contents = data.get("contents")
    if not isinstance(contents, list) or not contents:
        raise WireError("* GenerateContentRequest.contents: contents is not specified")
    turns: list[Turn] = []
    system = _get(data, "systemInstruction")
    if isinstance(system, dict):
        turns.append(Turn("system", "".join(_part_turn("", p).text for p in _list(system))))
    for content in contents:
        if not isinstance(content, dict):
            raise WireError("* GenerateContentRequest.contents: invalid content")
        role = str(content.get("role") or "user")
        parts = [_part_turn(role, p) for p in _list(content)]
        tools = [p for p in parts if p.role == "tool"]
        rest = [p for p in parts if p.role != "tool"]
        if rest or not tools:
            text = "".join(p.text for p in rest)
            turns.append(Turn("assistant", text) if role == "model" else Turn("user", text))
        turns.extend(tools)
    return tuple(turns)


def _list(content: Mapping[str, Any], name: str = "parts") -> list[Any]:
    items = _get(content, name)
    return items if isinstance(items, list) else []


def _tools(data: Mapping[str, Any]) -> tuple[tuple[ToolSpec, ...], str | None]:
    specs = []
    for tool in _list(data, "tools"):
        for fn in _list(tool, "functionDeclarations") if isinstance(tool, dict) else ():
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                schema = _get(fn, "parametersJsonSchema") or fn.get("parameters") or {}
                specs.append(ToolSpec(fn["name"], schema))
    config = _get(_get(data, "toolConfig"), "functionCallingConfig") or {}
    mode = str(_get(config, "mode") or "AUTO").upper()
    allowed = _get(config, "allowedFunctionNames") or []
    if mode == "NONE":
        return tuple(specs), "none"
    if mode == "ANY" and len(allowed) == 1:
        return tuple(specs), str(allowed[0])
    return tuple(specs), "required" if mode == "ANY" else None


class GeminiWire:
    protocol = "gemini"

    def parse(self, tail: str, query: Mapping[str, str], body: bytes) -> Exchange:
        match = _PATH_RE.fullmatch(tail.strip("/"))
        if match is None:
            raise WireError(f"The requested URL /{tail} was not found on this server.", "not_found")
        _, model, method = match.groups()
        data = json_body(body)
        inner = _get(data, "generateContentRequest")
        if method == "countTokens" and isinstance(inner, dict):
            data = inner
        config = _get(data, "generationConfig") or {}
        json_out = _get(config, "responseMimeType") == "application/json"
        schema = _get(config, "responseJsonSchema") or _get(config, "responseSchema")
        tools, choice = _tools(data)
        ask = Ask(
            turns=_turns(data),
            tools=tools,
            tool_choice=choice,
            schema=schema if json_out and isinstance(schema, dict) else None,
            json_mode=json_out,
            max_tokens=positive_int(_get(config, "maxOutputTokens"), "maxOutputTokens"),
        )
        stream = method == "streamGenerateContent"
        if method == "countTokens":
            return Exchange(ask, model, stream, "count")
        return Exchange(ask, model, stream, "chat")

    def _response(
        self, ex: Exchange, parts: list[dict[str, Any]], answer: Answer | None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        out: dict[str, Any] = {"candidates": [candidate]}
        if answer is not None:
            candidate["finishReason"] = _FINISH[answer.stop]
            out["usageMetadata"] = {
                "promptTokenCount": answer.input_tokens,
                "candidatesTokenCount": answer.output_tokens,
                "totalTokenCount": answer.input_tokens + answer.output_tokens,
            }
        out["modelVersion"] = ex.model
        out["responseId"] = uuid.uuid4().hex[:22]
        return out

    def _calls(self, answer: Answer) -> list[dict[str, Any]]:
        return [{"functionCall": {"name": c.name, "args": c.arguments}} for c in answer.calls]

    def reply(self, ex: Exchange, answer: Answer) -> dict[str, Any]:
        parts = [{"text": answer.text}] if answer.text else []
        return self._response(ex, parts + self._calls(answer), answer)

    def frames(self, ex: Exchange, answer: Answer) -> Frames:
        body = [sse(self._response(ex, [{"text": p}], None)) for p in split_words(answer.text)]
        if answer.calls:
            body.append(sse(self._response(ex, self._calls(answer), None)))
        tail = [sse(self._response(ex, [{"text": ""}], answer))]
        return Frames([], body, tail)

    def count(self, ex: Exchange) -> dict[str, Any]:
        return {"totalTokens": ex.ask.input_tokens}

    def error(
        self, kind: ErrorKind, ex: Exchange | None, retry_after: float | None, message: str = ""
    ) -> tuple[int, dict[str, Any]]:
        model = ex.model if ex else "unknown"
        status, code, text = {
            "rate_limit": (
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details.",
            ),
            "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
            "server_error": (
                500,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting",
            ),
            "unavailable": (503, "UNAVAILABLE", "The service is currently unavailable."),
            "bad_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
            "auth": (
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. API key not valid.",
            ),
            "not_found": (
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version v1beta, or is not supported "
                "for generateContent.",
            ),
            "context_length": (
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200000) exceeds the maximum number of tokens "
                "allowed (1048576).",
            ),
        }[kind]
        error: dict[str, Any] = {"code": status, "message": message or text, "status": code}
        if retry_after is not None:
            delay = seconds_text(retry_after) + "s"
            error["details"] = [{"@type": _RETRY_INFO, "retryDelay": delay}]
        return status, {"error": error}

    def stream_error(self) -> bytes:
        _, body = self.error("overloaded", None, None)
        return sse(body)

    def garbage(self) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text": \n\n'

    def headers(self, quota: QuotaView | None, retry_after: float | None) -> dict[str, str]:
        return {}
