"""The Gemini API wire protocol: ``POST {prefix}/{v1,v1beta}/models/{model}:generateContent``,
``:streamGenerateContent?alt=sse`` and ``:countTokens``.

The real service sends no rate-limit headers; its 429 carries a ``google.rpc.RetryInfo``
detail, and so does every error here that has a ``retry_after``.

Thinking, as the real API shows it: with ``thinkingConfig.includeThoughts`` the reply
starts with a thought part (``thought: true``); a Gemini 3 model (its name starts
``gemini-3``) signs the first function call and the last text part of each reply
(``thoughtSignature``: base64 of :func:`~.signing.sign` text), and its history is checked
(:func:`~.gemini_history.check_signatures`). Usage: ``thoughtsTokenCount`` is the thought's
tokens whenever a ``thinkingConfig`` is sent without ``thinkingBudget: 0``;
``cachedContentTokenCount`` is the prompt's tokens rounded down to whole 1024-token blocks,
once the prompt reaches 1024 (implicit caching's minimum). A refused prompt ends with
``finishReason: SAFETY`` and no parts, as a reply withheld by the safety filters.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from .brain import Answer, Ask, ToolSpec, Turn, count_tokens, split_words
from .gemini_history import carried, check_signatures, get, is_gemini_3
from .signing import sign
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
_FINISH = {"stop": "STOP", "tool": "STOP", "length": "MAX_TOKENS", "refusal": "SAFETY"}
_CACHE_BLOCK = 1024
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"


def _part_turn(role: str, part: object) -> Turn:
    if get(part, "thought"):
        return Turn("assistant", "")
    if (response := get(part, "functionResponse")) is not None:
        result = response.get("response") if isinstance(response, dict) else response
        return Turn("tool", json.dumps(result))
    if (call := get(part, "functionCall")) is not None:
        return Turn("assistant", json.dumps(call))
    text = str(get(part, "text") or "")
    return Turn("assistant", text) if role == "model" else Turn("user", text)


def _turns(data: Mapping[str, Any]) -> tuple[Turn, ...]:
    contents = data.get("contents")
    if not isinstance(contents, list) or not contents:
        raise WireError("* GenerateContentRequest.contents: contents is not specified")
    turns: list[Turn] = []
    system = get(data, "systemInstruction")
    if isinstance(system, dict):
        turns.append(Turn("system", "".join(_part_turn("", p).text for p in _list(system))))
    for content in contents:
        if not isinstance(content, dict):
            raise WireError("* GenerateContentRequest.contents: invalid content")
        role = str(content.get("role") or "user")
        parts = [_part_turn(role, p) for p in _list(content)]
        parts = [p for p in parts if p.text or p.role == "tool"] or parts[:1]
        tools = [p for p in parts if p.role == "tool"]
        rest = [p for p in parts if p.role != "tool"]
        if rest or not tools:
            text = "".join(p.text for p in rest)
            turns.append(Turn("assistant", text) if role == "model" else Turn("user", text))
        turns.extend(tools)
    return tuple(turns)


def _list(content: Mapping[str, Any], name: str = "parts") -> list[Any]:
    items = get(content, name)
    return items if isinstance(items, list) else []


def _tools(data: Mapping[str, Any]) -> tuple[tuple[ToolSpec, ...], str | None]:
    specs = []
    for tool in _list(data, "tools"):
        for fn in _list(tool, "functionDeclarations") if isinstance(tool, dict) else ():
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                schema = get(fn, "parametersJsonSchema") or fn.get("parameters") or {}
                specs.append(ToolSpec(fn["name"], schema))
    config = get(get(data, "toolConfig"), "functionCallingConfig") or {}
    mode = str(get(config, "mode") or "AUTO").upper()
    allowed = get(config, "allowedFunctionNames") or []
    if mode == "NONE":
        return tuple(specs), "none"
    if mode == "ANY" and len(allowed) == 1:
        return tuple(specs), str(allowed[0])
    return tuple(specs), "required" if mode == "ANY" else None


def _thought(ex: Exchange) -> str:
    """The thought summary the chaos model shows: what it was asked, in brief."""
    last = next((t.text for t in reversed(ex.ask.turns) if t.role != "system"), "")
    return f"Thinking about: {last[:60]}"


def _signature(text: str) -> str:
    """A thought signature as the API sends it: base64 of the signature's bytes."""
    return base64.b64encode(sign("gemini", text).encode()).decode("ascii")


class GeminiWire:
    protocol = "gemini"

    def parse(self, tail: str, query: Mapping[str, str], body: bytes) -> Exchange:
        match = _PATH_RE.fullmatch(tail.strip("/"))
        if match is None:
            raise WireError(f"The requested URL /{tail} was not found on this server.", "not_found")
        _, model, method = match.groups()
        data = json_body(body)
        inner = get(data, "generateContentRequest")
        if method == "countTokens" and isinstance(inner, dict):
            data = inner
        config = get(data, "generationConfig") or {}
        json_out = get(config, "responseMimeType") == "application/json"
        schema = get(config, "responseJsonSchema") or get(config, "responseSchema")
        tools, choice = _tools(data)
        ask = Ask(
            turns=_turns(data),
            tools=tools,
            tool_choice=choice,
            schema=schema if json_out and isinstance(schema, dict) else None,
            json_mode=json_out,
            max_tokens=positive_int(get(config, "maxOutputTokens"), "maxOutputTokens"),
        )
        stream = method == "streamGenerateContent"
        if method == "countTokens":
            return Exchange(ask, model, stream, "count")
        check_signatures(data["contents"], model)
        thinking = get(config, "thinkingConfig")
        thinks = isinstance(thinking, dict) and get(thinking, "thinkingBudget") != 0
        # A budget of 0 turns thinking off: no thoughts to count or to show.
        options = {
            "thinking": thinks,
            "thoughts": thinks and bool(get(thinking, "includeThoughts")),
        }
        return Exchange(ask, model, stream, "chat", options, carried(data))

    def _response(
        self, ex: Exchange, parts: list[dict[str, Any]], answer: Answer | None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        out: dict[str, Any] = {"candidates": [candidate]}
        if answer is not None:
            candidate["finishReason"] = _FINISH[answer.stop]
            if answer.stop == "refusal":
                candidate["safetyRatings"] = [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
                ]
            out["usageMetadata"] = self._usage(ex, answer)
        out["modelVersion"] = ex.model
        out["responseId"] = uuid.uuid4().hex[:22]
        return out

    def _usage(self, ex: Exchange, answer: Answer) -> dict[str, Any]:
        thoughts = count_tokens(_thought(ex)) if ex.options.get("thinking") else 0
        usage = {
            "promptTokenCount": answer.input_tokens,
            "candidatesTokenCount": answer.output_tokens,
            "totalTokenCount": answer.input_tokens + answer.output_tokens + thoughts,
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        if answer.input_tokens >= _CACHE_BLOCK:
            usage["cachedContentTokenCount"] = answer.input_tokens // _CACHE_BLOCK * _CACHE_BLOCK
        return usage

    def _calls(self, ex: Exchange, answer: Answer) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = [
            {"functionCall": {"name": c.name, "args": c.arguments}} for c in answer.calls
        ]
        if calls and is_gemini_3(ex.model):
            calls[0]["thoughtSignature"] = _signature(json.dumps(calls[0]["functionCall"]))
        return calls

    def _thoughts(self, ex: Exchange, answer: Answer) -> list[dict[str, Any]]:
        if not ex.options.get("thoughts") or answer.stop == "refusal":
            return []
        return [{"text": _thought(ex), "thought": True}]

    def _texts(self, ex: Exchange, pieces: list[str]) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"text": p} for p in pieces]
        if parts and is_gemini_3(ex.model):
            parts[-1]["thoughtSignature"] = _signature("".join(pieces))
        return parts

    def reply(self, ex: Exchange, answer: Answer) -> dict[str, Any]:
        texts = self._texts(ex, [answer.text] if answer.text else [])
        parts = self._thoughts(ex, answer) + texts + self._calls(ex, answer)
        return self._response(ex, parts, answer)

    def frames(self, ex: Exchange, answer: Answer) -> Frames:
        texts = self._texts(ex, split_words(answer.text))
        body = [sse(self._response(ex, [part], None)) for part in self._thoughts(ex, answer)]
        body += [sse(self._response(ex, [part], None)) for part in texts]
        if answer.calls:
            body.append(sse(self._response(ex, self._calls(ex, answer), None)))
        tail_parts = [] if answer.stop == "refusal" else [{"text": ""}]
        tail = [sse(self._response(ex, tail_parts, answer))]
        return Frames([], body, tail)

    def count(self, ex: Exchange) -> dict[str, Any]:
        return {"totalTokens": ex.ask.input_tokens}

    def error(
        self,
        kind: ErrorKind,
        ex: Exchange | None,
        retry_after: float | None,
        message: str = "",
        violation: tuple[str, int] | None = None,
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
        details: list[dict[str, Any]] = []
        if violation is not None:
            quota_id, quota_value = violation
            details.append(
                {
                    "@type": _QUOTA_FAILURE,
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/"
                            + (
                                "generate_content_free_tier_requests"
                                if "Requests" in quota_id
                                else "generate_content_free_tier_input_token_count"
                            ),
                            "quotaId": quota_id,
                            "quotaDimensions": {"location": "global", "model": model},
                            "quotaValue": str(quota_value),
                        }
                    ],
                }
            )
        if retry_after is not None:
            delay = seconds_text(retry_after) + "s"
            details.append({"@type": _RETRY_INFO, "retryDelay": delay})
        if details:
            error["details"] = details
        return status, {"error": error}

    def stream_error(self) -> bytes:
        _, body = self.error("overloaded", None, None)
        return sse(body)

    def garbage(self) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text": \n\n'

    def headers(self, quota: QuotaView | None, retry_after: float | None) -> dict[str, str]:
        return {}
