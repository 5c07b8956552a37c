"""The chaos providers' deterministic answers, independent of any wire protocol.

Each wire module turns its request into an :class:`Ask` and renders the :class:`Answer`.
The rules, in order:

- the last turn is a tool result: ``"The tool returned: <results>"``;
- tools are offered (and ``tool_choice`` is not ``"none"``) and the last turn is the
  user's: a call to the forced tool, else the first, with arguments filled from its schema;
- structured output is asked for: a JSON object matching the schema as the text; with no
  schema (JSON mode, or a free-form object: no properties, ``additionalProperties``) an
  object keyed by the prompt's quoted identifiers ("use the keys 'setup' and
  'punchline'"), else ``{"answer": ...}``;
- otherwise a fact ("capital of France", "Paris" vs "Lyon") or ``"Echo: <last user text>"``.

A request that continues a broken answer gets the rest of it, as a real model gives it:
one whose last turn is the assistant's start of the answer its conversation would get
(a prefill) gets exactly the rest; one whose last user turn follows such a start (an
instruction to continue) gets the rest with the start's last word restated first, as
models asked to continue tend to do, so the caller's seam has an overlap to remove.

Arguments are filled from the last user text: integer/number fields take its numbers in
order, string fields its quoted text ('…' or "…") in order, else a word of it (the first
capitalised word after the first word, else the longest), booleans are true, enums take their
first value, arrays one item, objects recurse; ``$ref`` / ``anyOf`` / ``const`` are followed.
Tokens are ``ceil(chars / 4)`` (at least 1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Answer", "Ask", "Call", "ToolSpec", "Turn", "answer", "count_tokens", "split_words"]

_PARIS = "The capital of France is Paris."
_COMPARE = (
    "Paris is the capital and largest city of France; Lyon, its third-largest city, "
    "is smaller and known for its cuisine."
)
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_QUOTED_RE = re.compile(
    r"\"([^\"]+)\"|(?<!\w)'([^']+)'(?!\w)|\u201c([^\u201d]+)\u201d|\u2018([^\u2019]+)\u2019"
)
_WORD_RE = re.compile(r"[A-Za-zÀ-ÿ][\w\-]*")
_MAX_DEPTH = 8


@dataclass(frozen=True)
class Turn:
    """One message's role and text; ``tool`` turns are tool results."""

    role: Literal["system", "user", "assistant", "tool"]
    text: str


@dataclass(frozen=True)
class ToolSpec:
    name: str
    schema: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ask:
    """A request reduced to what the brain reads.

    ``tool_choice``: ``None``/``"auto"``, ``"none"``, ``"required"`` or a tool's name.
    """

    turns: tuple[Turn, ...]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | None = None
    schema: Mapping[str, Any] | None = None
    json_mode: bool = False
    max_tokens: int | None = None

    @property
    def text_chars(self) -> int:
        return sum(len(t.text) for t in self.turns)

    @property
    def input_tokens(self) -> int:
        return count_tokens("".join(t.text for t in self.turns))

    @property
    def quota_tokens(self) -> int:
        """The quota charge: ``ceil(chars / 4)`` of all message text plus ``max_tokens``."""
        return -(-self.text_chars // 4) + (self.max_tokens or 0)


@dataclass(frozen=True)
class Call:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """``stop`` is ``"stop"``, ``"tool"``, ``"length"`` (cut at ``max_tokens``) or
    ``"refusal"`` (the prompt asked for one with :data:`REFUSE`: ``refusal`` holds the
    model's refusal text, and ``text`` is empty)."""

    text: str
    calls: tuple[Call, ...]
    input_tokens: int
    output_tokens: int
    stop: Literal["stop", "tool", "length", "refusal"]
    refusal: str | None = None


REFUSE = "[refuse]"
"""A user prompt holding this is refused, so tests see each family's refusal form."""
REFUSAL_TEXT = "I can't help with that request."


def count_tokens(text: str) -> int:
    """``ceil(len(text) / 4)``, at least 1."""
    return max(1, -(-len(text) // 4))


def split_words(text: str, pieces: int = 4) -> list[str]:
    """``text`` cut at word boundaries into at most ``pieces`` parts that join back to it."""
    words = re.findall(r"\S+\s*|\s+", text)
    if not words:
        return [text] if text else []
    size = -(-len(words) // pieces)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def answer(ask: Ask) -> Answer:
    """The deterministic answer to ``ask``."""
    rest = _continued(ask)
    if rest is not None:
        return Answer(rest, (), ask.input_tokens, count_tokens(rest), "stop")
    return _answer(ask)


def _continued(ask: Ask) -> str | None:
    """The rest of a broken answer this request asks to continue, or None."""
    turns = ask.turns
    if len(turns) >= 2 and turns[-1].role == "assistant" and turns[-1].text:
        whole = _answer(dataclasses.replace(ask, turns=turns[:-1])).text
        start = turns[-1].text
        if whole.startswith(start) and len(whole) > len(start):
            return whole[len(start) :]
    if len(turns) >= 3 and turns[-1].role == "user" and turns[-2].role == "assistant":
        whole = _answer(dataclasses.replace(ask, turns=turns[:-2])).text
        start = turns[-2].text
        if start.strip() and whole.startswith(start) and len(whole) > len(start):
            kept = start.rstrip()
            last_word = max(kept.rfind(" "), kept.rfind("\n")) + 1
            return whole[last_word:]
    return None


def _answer(ask: Ask) -> Answer:
    last = ask.turns[-1] if ask.turns else Turn("user", "")
    prompt = _last_user(ask.turns)
    calls: tuple[Call, ...] = ()
    if REFUSE in prompt and last.role == "user":
        return Answer("", (), ask.input_tokens, count_tokens(REFUSAL_TEXT), "refusal", REFUSAL_TEXT)
    if last.role == "tool":
        results = [t.text for t in _trailing_results(ask.turns)]
        text = "The tool returned: " + "; ".join(results)
    elif ask.tools and ask.tool_choice != "none" and last.role == "user":
        tool = next((t for t in ask.tools if t.name == ask.tool_choice), ask.tools[0])
        args = _fill(tool.schema, _Source(prompt), tool.schema, 0)
        seed = f"{tool.name}{json.dumps(args, sort_keys=True)}{prompt}"
        digest = hashlib.sha256(seed.encode("utf-8", "surrogatepass"))
        calls = (Call(digest.hexdigest()[:24], tool.name, args if isinstance(args, dict) else {}),)
        text = ""
    elif ask.schema is not None:
        text = json.dumps(_fill(ask.schema, _Source(prompt), ask.schema, 0))
    elif ask.json_mode:
        text = json.dumps(_free_object(prompt))
    else:
        text = _fact(prompt)
    stop: Literal["stop", "tool", "length", "refusal"] = "tool" if calls else "stop"
    if ask.max_tokens is not None and not calls and count_tokens(text) > ask.max_tokens:
        text, stop = text[: ask.max_tokens * 4], "length"
    out = text + "".join(json.dumps(c.arguments) + c.name for c in calls)
    return Answer(text, calls, ask.input_tokens, count_tokens(out), stop)


def _last_user(turns: Sequence[Turn]) -> str:
    return next((t.text for t in reversed(turns) if t.role == "user"), "")


def _trailing_results(turns: Sequence[Turn]) -> list[Turn]:
    out: list[Turn] = []
    for turn in reversed(turns):
        if turn.role != "tool":
            break
        out.insert(0, turn)
    return out


def _fact(prompt: str) -> str:
    low = prompt.lower()
    both = "paris" in low and "lyon" in low
    # A question about the capital wins over context that merely mentions Lyon (a RAG
    # prompt carries retrieved documents), unless a comparison is asked for.
    if both and "compar" in low:
        return _COMPARE
    if "capital of france" in low:
        return _PARIS
    if both:
        return _COMPARE
    return "Echo: " + prompt[:200]


class _Source:
    """The values a prompt offers, each handed out once, in order."""

    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.numbers: Iterator[str] = iter(_NUMBER_RE.findall(prompt))
        quoted = [next(g for g in m if g) for m in _QUOTED_RE.findall(prompt)]
        self.strings: Iterator[str] = iter(quoted + _words(prompt))

    def number(self) -> float | None:
        raw = next(self.numbers, None)
        return None if raw is None else float(raw)

    def string(self) -> str:
        return next(self.strings, "value")


def _free_object(prompt: str) -> dict[str, Any]:
    """Schema-less JSON: the keys the prompt names in quotes, else a single answer."""
    quoted = [next(g for g in m if g) for m in _QUOTED_RE.findall(prompt)]
    keys = [k for k in quoted if k.isidentifier()]
    if not keys:
        return {"answer": _fact(prompt)}
    return {key: f"{key} for: {prompt[:80]}" for key in dict.fromkeys(keys)}


def _words(prompt: str) -> list[str]:
    words = _WORD_RE.findall(prompt)
    capitals = [w for w in words[1:] if w[0].isupper()]
    rest = sorted((w for w in words if w not in capitals), key=len, reverse=True)
    return capitals + rest


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            return node
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list):
            usable = [o for o in options if isinstance(o, Mapping) and o.get("type") != "null"]
            if usable:
                return usable[0]
    return schema


def _type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "string")
    if isinstance(kind, str):
        return kind.lower()  # Gemini's OpenAPI schemas say "STRING", "OBJECT"...
    return "object" if "properties" in schema else "string"


def _fill(schema: Any, source: _Source, root: Mapping[str, Any], depth: int) -> Any:
    """A value matching ``schema`` (a JSON schema or Gemini's OpenAPI subset)."""
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return None
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = _type(schema)
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        required = schema.get("required")
        if depth == 0 and not props and not required and schema.get("additionalProperties"):
            return _free_object(source.prompt)
        names = list(props) + [
            r
            for r in (required if isinstance(required, list) else [])
            if isinstance(r, str) and r not in props
        ]
        return {str(n): _fill(props.get(n, {}), source, root, depth + 1) for n in names}
    if kind == "array":
        return [_fill(schema.get("items", {}), source, root, depth + 1)]
    if kind in ("integer", "number"):
        value = source.number()
        if kind == "integer":
            return int(value) if value is not None else 0
        return value if value is not None else 0.0
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return source.string()
