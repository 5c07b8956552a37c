"""Reasoning and signatures between ``AIMessage`` and the engine, in the partner packages' forms.

A reply's reasoning becomes content blocks the way ``ChatAnthropic`` and
``ChatGoogleGenerativeAI`` return it: ``{"type": "thinking", "thinking", "signature"}``
(and Anthropic's ``{"type": "redacted_thinking", "data"}``) before the text; a Gemini
function call's thought signature goes in
``additional_kwargs["__gemini_function_call_thought_signatures__"]`` keyed by the call's
id, where ``ChatGoogleGenerativeAI`` keeps it.

Both families write the same ``thinking`` shape, so a message coming back as history is
told apart by :func:`family_of`: ``response_metadata["model_provider"]`` as the partner
packages set it (a Gemini route's reply here says ``"google_genai"``, which LangChain's
``content_blocks`` translators read too), else Gemini's own signature forms, else it is
taken as ``ChatAnthropic``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage

from resilient_llm import Reasoning, ToolCall
from resilient_llm.providers import known_kinds, provider_spec

__all__ = [
    "GEMINI_SIGNATURES",
    "REASONING_TYPES",
    "call_signatures",
    "family_of",
    "model_provider",
    "reasoning_blocks",
    "reasoning_part",
    "signature_kwargs",
    "split_text_only",
    "text_only_part",
    "text_signature",
]

GEMINI_SIGNATURES = "__gemini_function_call_thought_signatures__"
"""``ChatGoogleGenerativeAI``'s ``additional_kwargs`` key: tool call id -> signature."""

REASONING_TYPES = frozenset({"thinking", "redacted_thinking", "reasoning"})

# LangChain's names of a family that are not a kind's LangSmith name.
_ALIASES = {"google_vertexai": "gemini", "google": "gemini"}
_DEFAULT_FAMILY = "anthropic"
# As ``join_reasoning`` joins streamed pieces: Anthropic's signature piece ends the block
# whose text came before it; elsewhere (Gemini) a signed piece is a block of its own.
_SIGNATURE_ENDS = frozenset({"anthropic"})
# Families whose reasoning is text only, kept in ``additional_kwargs`` (see split_text_only).
_TEXT_ONLY = frozenset({"openai"})
REASONING_CONTENT = "reasoning_content"


def model_provider(kind: str) -> str | None:
    """LangChain's name of provider kind ``kind`` (``gemini`` -> ``google_genai``)."""
    return provider_spec(kind).langsmith_name if kind in known_kinds() else None


def family_of(message: AIMessage) -> str:
    """The provider kind whose reasoning ``message`` holds (see the module's doc); without
    ``model_provider``, Gemini's when it holds Gemini's signature forms."""
    name = message.response_metadata.get("model_provider")
    if isinstance(name, str):
        for kind in known_kinds():
            if provider_spec(kind).langsmith_name == name or kind == name:
                return kind
        if name in _ALIASES:
            return _ALIASES[name]
    if GEMINI_SIGNATURES in message.additional_kwargs or any(
        isinstance(b, dict) and b.get("type") == "text" and _extras_signature(b) is not None
        for b in message.content
        if not isinstance(message.content, str)
    ):
        return "gemini"
    return _DEFAULT_FAMILY


def _extras_signature(block: Mapping[str, Any]) -> str | None:
    extras = block.get("extras")
    signature = extras.get("signature") if isinstance(extras, Mapping) else None
    return signature if isinstance(signature, str) else None


def reasoning_part(block: Mapping[str, Any], family: str, where: str) -> Reasoning | None:
    """A ``thinking`` / ``redacted_thinking`` / v1 ``reasoning`` block as a part (None
    for a block that holds nothing: no text, no signature)."""
    kind = block.get("type")
    if kind == "redacted_thinking":
        data = block.get("data")
        if not isinstance(data, str):
            raise ValueError(f"{where}: a redacted_thinking block's data must be a str")
        return Reasoning(signature=data, family=family, redacted=True)
    if kind == "thinking":
        text, signature = block.get("thinking", ""), block.get("signature")
    else:
        text = block.get("reasoning")
        if text is None and isinstance(block.get("summary"), list):
            # OpenAI Responses' reasoning item: its summary is what the model showed.
            text = "".join(str(s.get("text", "")) for s in block["summary"] if isinstance(s, dict))
        signature = _extras_signature(block) or block.get("signature")
    if not isinstance(text, str):
        raise ValueError(f"{where}: a {kind!r} block's text must be a str, got {text!r}")
    if signature is not None and not isinstance(signature, str):
        raise ValueError(f"{where}: a {kind!r} block's signature must be a str")
    if not text and signature is None:
        return None
    return Reasoning(text, signature, family)


def text_signature(block: Mapping[str, Any], family: str) -> Reasoning | None:
    """The thought signature ``ChatGoogleGenerativeAI`` puts on a text block
    (``extras.signature``), as a text-less reasoning part."""
    signature = _extras_signature(block)
    return None if signature is None else Reasoning("", signature, family)


def call_signatures(message: AIMessage, family: str) -> dict[str, tuple[str, str]]:
    """Each tool call id's ``(signature, family)`` from ``additional_kwargs``."""
    found = message.additional_kwargs.get(GEMINI_SIGNATURES)
    if not isinstance(found, Mapping):
        return {}
    return {str(k): (v, family) for k, v in found.items() if isinstance(v, str)}


def signature_kwargs(calls: Iterable[ToolCall]) -> dict[str, Any]:
    """``additional_kwargs`` holding the tool calls' signatures, if any."""
    signed = {c.id: c.signature for c in calls if c.signature is not None and c.id}
    return {GEMINI_SIGNATURES: signed} if signed else {}


def split_text_only(reasoning: Sequence[Reasoning]) -> tuple[list[Reasoning], dict[str, Any]]:
    """The reasoning that becomes content blocks, and ``additional_kwargs`` holding the
    rest: an OpenAI-protocol route's ``reasoning_content`` (DeepSeek-style reasoners), as
    ``ChatDeepSeek`` keeps it and LangChain's ``content_blocks`` reads it; it has no
    signature and no route takes it back."""
    blocks = [r for r in reasoning if r.family not in _TEXT_ONLY]
    text = "".join(r.text for r in reasoning if r.family in _TEXT_ONLY)
    return blocks, ({REASONING_CONTENT: text} if text else {})


def text_only_part(message: AIMessage) -> Reasoning | None:
    """``additional_kwargs["reasoning_content"]`` as the part it came from."""
    text = message.additional_kwargs.get(REASONING_CONTENT)
    return Reasoning(text, family="openai") if isinstance(text, str) and text else None


def reasoning_blocks(reasoning: Sequence[Reasoning]) -> list[dict[str, Any]]:
    """Reasoning parts as ``thinking`` / ``redacted_thinking`` blocks, in order."""
    return [block(r) for r in reasoning]


def block(piece: Reasoning, index: int | None = None) -> dict[str, Any]:
    """One reasoning part, or a streamed piece of one (with its block's ``index``)."""
    out: dict[str, Any]
    if piece.redacted:
        out = {"type": "redacted_thinking", "data": piece.signature}
    else:
        out = {"type": "thinking", "thinking": piece.text}
        if piece.signature is not None:
            out["signature"] = piece.signature
    if index is not None:
        out["index"] = index
    return out


class StreamBlocks:
    """Numbers a stream's content blocks, so that LangChain's chunk merging (``+``, which
    joins list items with the same ``index``) assembles the blocks ``invoke`` returns.

    Until a reasoning piece arrives, text deltas are plain strings (a reply without
    reasoning is a str, as from ``invoke``); after one, each piece is a block: a
    reasoning block's text deltas (and Anthropic's signature after them) share one index,
    a Gemini signature takes one of its own, and the text that follows takes the next.
    """

    def __init__(self) -> None:
        self.blocks = False
        self._next = 0
        self._reasoning: tuple[int, str | None] | None = None
        self._text: int | None = None

    def content(self, delta: str, pieces: Sequence[Reasoning]) -> str | list[Any]:
        """A chunk's content: ``delta`` and its reasoning ``pieces`` (in that order in
        the reply: reasoning first), text-only reasoning left to ``split_text_only``."""
        pieces = [p for p in pieces if p.family not in _TEXT_ONLY]
        if not pieces and not self.blocks:
            return delta
        self.blocks = True
        out: list[dict[str, Any]] = []
        for piece in pieces:
            made = self._piece(piece)
            if out and out[-1]["index"] == made["index"]:
                # One block's pieces in one chunk: LangChain joins blocks across chunks only.
                made["thinking"] = out[-1]["thinking"] + made["thinking"]
                out[-1] = made
            else:
                out.append(made)
        if delta:
            if self._text is None:
                self._text = self._take()
            out.append({"type": "text", "text": delta, "index": self._text})
        return out

    def _piece(self, piece: Reasoning) -> dict[str, Any]:
        self._text = None
        if piece.redacted or (piece.signature is not None and piece.family not in _SIGNATURE_ENDS):
            self._reasoning = None
            return block(piece, self._take())
        if self._reasoning is None or self._reasoning[1] != piece.family:
            self._reasoning = (self._take(), piece.family)
        index = self._reasoning[0]
        if piece.signature is not None:
            self._reasoning = None
        return block(piece, index)

    def _take(self) -> int:
        self._next += 1
        return self._next - 1
