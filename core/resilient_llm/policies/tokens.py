"""Estimate how many tokens a request will use, before it is sent.

The limiter reserves tokens-per-minute from this estimate, so two promises matter more than
precision: an estimate is always an ``int >= 1`` and never raises, whatever the model name or
the content; and it leans towards overestimating, because a limiter that undercounts lets
through calls that the provider then answers with 429.

OpenAI models are counted exactly with tiktoken (``o200k_base`` or ``cl100k_base``), from BPE
files shipped in ``resilient_llm/_bpe/`` and checked against the SHA-256 that tiktoken itself
pins: tiktoken's own ``get_encoding`` downloads those files at first use and fails offline,
so it is never called. In text over 64K characters, runs of 256 or more without whitespace
are sampled rather than encoded, and so is all of it past a million characters
(:func:`_bounded_count`): an estimate may run on the caller's event loop, and tiktoken's
cost grows with the length of such runs (seconds for 10 MB). Claude, Gemini and
unknown models use :func:`_heuristic_tokens`, and so does an OpenAI model whose BPE file is
missing or corrupt (with one logged warning).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any, Literal

from .._forks import renew_locks
from ..content import Audio, Document, Image, Reasoning, Text
from ..messages import ChatRequest, Message, Tool, to_messages

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "DEFAULT_OUTPUT_RESERVE",
    "count_text_tokens",
    "encoding_for_model",
    "estimate_tokens",
    "preload",
    "reserved_output",
    "usage_ceiling",
    "within",
]

EncodingName = Literal["o200k_base", "cl100k_base"]

DEFAULT_OUTPUT_RESERVE: int = 1024
"""Output tokens reserved when a request sets no ``max_tokens``: providers charge the reply
against tokens-per-minute too. 1024 covers a typical answer (a few paragraphs, a tool call, a
JSON object); reserving the model's whole output window (4k-128k) would make a TPM limit
admit far fewer calls than it could. The limiter settles against real usage afterwards."""

USAGE_INPUT_FACTOR = 4
"""How far a provider's prompt count may exceed our prompt estimate before it is taken for a
lie: the heuristic leans to overestimating, tiktoken is exact for OpenAI models."""
USAGE_INPUT_SLACK = 4096
"""Prompt tokens a provider adds that no estimate sees (Anthropic's tool-use system prompt
is a few hundred)."""
UNKNOWN_OUTPUT_LIMIT = 131_072
"""The most output a reply is believed to have when neither the request nor the model table
bounds it."""

# OpenAI's chat format (the "How to count tokens" cookbook): every message costs 3 tokens
# around its content (<|start|>{role}<|message|>...<|end|>), a ``name`` costs 1 more, and
# every reply is primed with 3 (<|start|>assistant<|message|>). Tool definitions are rendered
# by the provider in a TypeScript-like form we cannot see; counting their JSON instead
# overcounts slightly, and a fixed overhead covers the wrapper text.
_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMING = 3
_PER_TOOL_CALL = 3
_PER_TOOL = 8
_TOOLS_WRAPPER = 12
_SCHEMA_WRAPPER = 8
# Media are counted without decoding them, on the high side of what the families charge:
# an image at most ~1,600 tokens (Anthropic's cap for a large image; OpenAI's high detail
# and Gemini's tiles cost less), a PDF ~1,500 per 50 KB (a text page and its image), audio
# ~32 tokens a second (Gemini) taken as 1 per KB of compressed or 16 kHz audio.
_PER_IMAGE = 1_600
_PDF_BYTES_PER_TOKEN = 33
_AUDIO_BYTES_PER_TOKEN = 1_000

_log = logging.getLogger("resilient_llm")
_BPE_DIR: Traversable = files("resilient_llm") / "_bpe"

# From tiktoken_ext/openai_public.py (tiktoken 0.14), which pins the same files by hash.
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PAT = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""  # noqa: E501
_SPECS: dict[str, tuple[str, str, dict[str, int]]] = {
    "o200k_base": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PAT,
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PAT,
        {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259}
        | {"<|fim_suffix|>": 100260, "<|endofprompt|>": 100276},
    ),
}

_O200K = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "gpt-oss", "o1", "o3", "o4")
_CL100K = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002")


def encoding_for_model(model: str | None) -> EncodingName | None:
    """The tiktoken encoding of an OpenAI model, or ``None`` for the heuristic family
    (Claude, Gemini, anything unknown). Provider prefixes (``"openai/gpt-4o-mini"``) and
    fine-tune names (``"ft:gpt-4o-mini:org::id"``) are understood; case is ignored."""
    if not isinstance(model, str):
        return None
    name = model.strip().lower().rsplit("/", 1)[-1].removeprefix("ft:")
    if name.startswith(_O200K):
        return "o200k_base"
    if name.startswith(_CL100K):
        return "cl100k_base"
    return None


def _load_encoding(name: str, path: Traversable | None = None) -> tiktoken.Encoding | None:
    """Build one encoding from a local BPE file; ``None`` (and a warning) if it is missing,
    corrupt or fails its SHA-256 check. Reads the file itself rather than through
    ``tiktoken.load.load_tiktoken_bpe``, which would also copy it into tiktoken's cache dir."""
    try:
        import tiktoken

        expected, pat_str, special = _SPECS[name]
        data = (path or _BPE_DIR / f"{name}.tiktoken").read_bytes()
        if hashlib.sha256(data).hexdigest() != expected:
            raise ValueError("SHA-256 mismatch")
        ranks: dict[bytes, int] = {}
        for line in data.splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
        return tiktoken.Encoding(
            name=name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special
        )
    except Exception as exc:
        _log.warning("tiktoken %s unavailable (%s); estimating tokens heuristically", name, exc)
        return None


_LOCK = threading.Lock()
renew_locks(sys.modules[__name__], "_LOCK")
_LOADED: dict[str, tiktoken.Encoding | None] = {}


def _encoding(name: str) -> tiktoken.Encoding | None:
    """The encoding, loaded at most once per process (the lock makes racing threads wait)."""
    with _LOCK:
        if name not in _LOADED:
            _LOADED[name] = _load_encoding(name)
        return _LOADED[name]


def preload(model: str | None) -> None:
    """Load ``model``'s encoding now (a no-op for the heuristic families and once loaded),
    so the first estimate does not pay for reading it, on an event loop perhaps."""
    name = encoding_for_model(model)
    if name is not None:
        _encoding(name)


def reserved_output(request: ChatRequest) -> int:
    """The output tokens an estimate of ``request`` includes: its ``max_tokens``, else
    :data:`DEFAULT_OUTPUT_RESERVE`. An estimate minus this is the prompt alone."""
    return request.max_tokens or DEFAULT_OUTPUT_RESERVE


def _class_table() -> bytes:
    """Maps each UTF-8 byte to a class letter; continuation bytes are deleted, so each
    character leaves one letter (its lead byte tells its script block)."""
    out = bytearray(256)
    for i in range(256):
        c = chr(i)
        if i < 0x80:
            cls = "a" if c.islower() else "A" if c.isupper() else "0" if c.isdigit() else "."
            cls = "n" if c in "\r\n" else "s" if c.isspace() else cls
        else:
            cls = "2" if i < 0xE0 else "4" if i >= 0xF0 else "3"
            cls = {0xE2: "g", 0xE3: "k", 0xEA: "K", 0xEB: "K", 0xEC: "K", 0xED: "K"}.get(i, cls)
            cls = "h" if 0xE4 <= i <= 0xE9 else cls
        out[i] = ord(cls)
    return bytes(out)


_CLASSES = _class_table()
_CONTINUATION = bytes(range(0x80, 0xC0))


_WORD, _NUMBER, _BREAK = (
    bytes(i in members for i in range(256)) for members in (b"aA2", b"0", b"n")
)
_MARGIN = 1.10
# Tokens per occurrence, fitted (non-negative least squares on relative error) against o200k.
_RATES: tuple[tuple[bytes, float], ...] = (
    (b"a", 0.18), (b"A", 0.18),  # ASCII letters
    (b"aA", 1.4),  # lower->upper (camelCase, base64): o200k splits words there
    (b"0", 0.4),  # digits (o200k: groups of up to 3)
    (b".", 0.48),  # ASCII punctuation
    (b"2", 0.29),  # 2-byte letters: Latin-1/Extended, Greek, Cyrillic, Hebrew, Arabic
    (b"a2", 0.77), (b"2a", 0.77), (b"A2", 0.77),  # accents inside Latin words
    (b"g", 0.6),  # U+2000-2FFF: typographic punctuation, arrows, symbols
    (b"k", 0.72), (b"h", 0.79), (b"K", 0.72),  # kana, Han, Hangul
    (b"3", 0.4),  # other 3-byte: Indic, Thai, Vietnamese extras, fullwidth
    (b"4", 1.95),  # 4-byte: emoji, rare CJK
)  # fmt: skip
_RUN_RATES = ((_WORD, 0.19), (_NUMBER, 1.1), (_BREAK, 1.6))  # per word, number, line break


def _runs(classes: bytes, table: bytes) -> int:
    marked = classes.translate(table)  # 1 inside the class, 0 outside
    return marked.count(b"\x00\x01") + (marked[:1] == b"\x01")


def _heuristic_tokens(text: str) -> int:
    """Tokens of ``text`` for models without a local tokenizer (Claude, Gemini, unknown).

    Counts character classes with C-speed ``bytes.translate``/``count`` (1 MB in ~20 ms) and
    weighs them with rates fitted against o200k on the corpus in
    ``tests/core/data/token_corpus.json`` (checked on ~300 held-out samples of installed
    Python source, docs and JSON), then multiplies by 1.10: Claude's and Gemini's tokenizers
    count somewhat more than o200k for the same text, and an underestimate means a 429.
    Measured against o200k on that corpus (error = estimate / o200k - 1): mean signed error
    +8.5 %, and >= 0 in every category; mean abs error per category: prose 9 %, code 16 %,
    CJK 12 %, JSON 8 %, other scripts 16 %, machine strings 10 %, lists/SQL/markup 8 %;
    worst single sample -21 % (Hebrew; Polish, Finnish, a list of names near -18 %) and
    +40 % (Russian). ``tests/core/test_tokens.py`` re-measures and holds these bounds.
    """
    if not text:
        return 0
    classes = text.encode("utf-8", "surrogatepass").translate(_CLASSES, _CONTINUATION)
    total = sum(rate * classes.count(pattern) for pattern, rate in _RATES)
    total += sum(rate * _runs(classes, table) for table, rate in _RUN_RATES)
    return max(1, math.ceil(total * _MARGIN))


_WHOLE = 1 << 16
"""Text up to this many characters is encoded whole (at most ~25 ms, for dense CJK)."""
_EXACTLY = 1 << 20
"""Text outside long runs is encoded exactly up to this many characters (~20-100 ms)."""
_PIECE = 1 << 12
_SAMPLED = 32
_RUN = 256
_ASCII_SPACE = b" \t\n\r\x0b\x0c"
# One mark per character (UTF-8 continuation bytes deleted): 1 where a character may be
# inside a run without whitespace, then 0 where it may be inside a run of whitespace.
# Characters beyond ASCII may be either, so they may continue both kinds of run.
_MAY_BE_WORD = bytes(i not in _ASCII_SPACE for i in range(256))
_MAY_BE_SPACE = bytes(i < 0x80 and i not in _ASCII_SPACE for i in range(256))


def _long_runs(text: str) -> list[tuple[int, int]]:
    """The spans of ``text`` in runs of :data:`_RUN` or more characters without whitespace
    (or of whitespace alone), joined across shorter gaps; found with C-speed byte scans.

    A piece the tokenizer merges pairs in lies in such a run but for its first character,
    so text outside the spans is cheap to encode. (Not looked for: o200k's one exception,
    punctuation followed by thousands of alternating newlines and slashes.)
    """
    data = text.encode("utf-8", "surrogatepass")
    found: list[tuple[int, int]] = []
    for table, inside in ((_MAY_BE_WORD, 1), (_MAY_BE_SPACE, 0)):
        marks = data.translate(table, _CONTINUATION)
        run, outside = bytes([inside]) * _RUN, bytes([1 - inside])
        start = marks.find(run)
        while start >= 0:
            end = marks.find(outside, start + _RUN)
            end = len(marks) if end < 0 else end
            found.append((start, end))
            start = marks.find(run, end)
    spans: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if spans and start - spans[-1][1] < _RUN:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans


def _bounded_count(text: str, exact: Callable[[str], int]) -> int:
    """About ``exact(text)``, at a cost linear in the length of ``text`` and small.

    tiktoken's cost grows with the length of each piece it merges byte pairs in, and a
    run without whitespace is one piece: 10 MB of letters took seconds (4 to 10 s), on the
    caller's event loop perhaps, where no deadline can cut it. So long runs are sampled
    (:func:`_scaled`), and so is the rest of the text when it is longer than
    :data:`_EXACTLY` characters (12 MB of indented JSON took about a second); shorter, the
    rest is encoded exactly.
    """
    runs = _long_runs(text)
    bounds = [0, *(edge for span in runs for edge in span), len(text)]
    gaps = [
        (bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2) if bounds[i + 1] > bounds[i]
    ]
    if sum(end - start for start, end in gaps) > _EXACTLY:
        plain = _scaled(text, gaps, exact)
    else:
        plain = sum(exact(text[start:end]) for start, end in gaps)
    return plain + (_scaled(text, runs, exact) if runs else 0)


def _scaled(text: str, spans: list[tuple[int, int]], exact: Callable[[str], int]) -> int:
    """About ``exact`` of the text in ``spans``: :data:`_SAMPLED` stretches of
    :data:`_PIECE` characters spread evenly over them are encoded, and the heuristic,
    which reads all of them at C speed, is scaled by how far it was off on those stretches.
    A sample alone could miss a denser stretch; the heuristic alone is off by up to half
    on some text (minified JSON, one letter repeated).
    """
    pieces = [
        (begin, min(begin + _PIECE, end))
        for start, end in spans
        for begin in range(start, end, _PIECE)
    ]
    step = max(1, len(pieces) // _SAMPLED)
    sample = [text[begin:end] for begin, end in pieces[::step][:_SAMPLED]]
    seen = sum(_heuristic_tokens(piece) for piece in sample)
    whole = sum(_heuristic_tokens(text[start:end]) for start, end in spans)
    return math.ceil(whole * sum(exact(piece) for piece in sample) / max(1, seen))


# Per model name and per encoding, made once: an estimate runs on every call, and a
# route has one model.
_MODEL_ENCODINGS: dict[str, EncodingName | None] = {}
_COUNTERS: dict[str, tuple[tiktoken.Encoding, Callable[[str], int]]] = {}
_MAX_MODELS = 1024  # model names are few; a caller inventing them gets no cache past this


def _counter(model: str | None) -> Callable[[str], int]:
    if isinstance(model, str):
        try:
            name = _MODEL_ENCODINGS[model]
        except KeyError:
            name = encoding_for_model(model)
            if len(_MODEL_ENCODINGS) < _MAX_MODELS:
                _MODEL_ENCODINGS[model] = name
    else:
        name = None
    if name is None:
        return _heuristic_tokens
    # A loaded encoding is never replaced, so reading it needs no lock; one that failed
    # to load (None) goes through the loader, which knows.
    encoding = _LOADED.get(name) or _encoding(name)
    if encoding is None:
        return _heuristic_tokens
    made = _COUNTERS.get(name)
    if made is None or made[0] is not encoding:
        made = _COUNTERS[name] = (encoding, _exact_counter(encoding))
    return made[1]


def _exact_counter(encoding: tiktoken.Encoding) -> Callable[[str], int]:
    def exact(text: str) -> int:  # encode_ordinary: "<|endoftext|>" in a prompt is text
        return len(encoding.encode_ordinary(text))

    def count(text: str) -> int:
        try:
            return exact(text) if len(text) <= _WHOLE else _bounded_count(text, exact)
        except Exception:
            return _heuristic_tokens(text)

    return count


def count_text_tokens(text: str, model: str | None = None) -> int:
    """Tokens of plain text for ``model`` (exact for OpenAI models); 0 for ``""``."""
    return _counter(model)(text if isinstance(text, str) else _text(text))


def _text(value: Any) -> str:
    """JSON for structured values (as providers send them), else ``str``; never raises."""
    try:
        if isinstance(value, str):
            return value
        value = dict(value) if isinstance(value, Mapping) else value
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return ""


def _content_tokens(message: Message, count: Callable[[str], int]) -> int:
    if isinstance(message.content, str):
        return count(message.content)
    total = 0
    for part in message.content:
        if isinstance(part, Text | Reasoning):
            total += count(part.text)
        elif isinstance(part, Image):
            total += _PER_IMAGE
        elif isinstance(part, Document):
            size = len(part.data) if part.data is not None else 0
            total += max(_PER_IMAGE, size // _PDF_BYTES_PER_TOKEN)
        elif isinstance(part, Audio):
            size = len(part.data) if part.data is not None else 0
            total += max(1, size // _AUDIO_BYTES_PER_TOKEN)
    return total


def _message_tokens(message: Message, count: Callable[[str], int]) -> int:
    total = _PER_MESSAGE + _content_tokens(message, count) + (_PER_NAME if message.name else 0)
    for part in (message.name, message.tool_call_id):
        total += count(_text(part)) if part else 0
    for call in message.tool_calls:
        # An invalid call is sent as the text the model wrote.
        arguments = call.raw_arguments if call.invalid else call.arguments
        parts = (call.id, call.name, arguments)
        total += _PER_TOOL_CALL + sum(count(_text(part)) for part in parts)
    return total


def _tool_tokens(tool: Tool, count: Callable[[str], int]) -> int:
    parts = (tool.name, tool.description, tool.parameters)
    return _PER_TOOL + sum(count(_text(part)) for part in parts)


def _estimate(
    request: ChatRequest | Sequence[Message | Mapping[str, Any]] | str, model: str | None
) -> int:
    if isinstance(request, ChatRequest):
        count = _counter(model or request.model)
        total = sum(_message_tokens(m, count) for m in request.messages)
        if request.tools:
            total += _TOOLS_WRAPPER + sum(_tool_tokens(t, count) for t in request.tools)
        if request.response_schema is not None:
            total += _SCHEMA_WRAPPER + count(_text(request.response_schema))
        return total + _REPLY_PRIMING + reserved_output(request)
    count = _counter(model)
    total = _REPLY_PRIMING + DEFAULT_OUTPUT_RESERVE
    if isinstance(request, str) or not isinstance(request, Sequence):
        return total + _PER_MESSAGE + count(_text(request))
    items: Sequence[Any] = request
    for item in items:
        try:
            total += sum(_message_tokens(m, count) for m in to_messages([item]))
        except Exception:
            total += _PER_MESSAGE + count(_text(item))
    return total


def estimate_tokens(
    request: ChatRequest | Sequence[Message | Mapping[str, Any]] | str, model: str | None = None
) -> int:
    """Tokens a call will consume: prompt plus reserved output, for ``model`` (by default the
    request's own model).

    Counts every message (content, name, tool call ids, names and JSON arguments, tool result
    ids) with OpenAI's per-message overhead, the tool schemas, the response schema, and the
    output reserve: ``max_tokens`` if the request sets it, else :data:`DEFAULT_OUTPUT_RESERVE`
    (always the latter for a plain string or list of messages). A string counts as one user
    message; a dict that is not a valid message is counted from its text. Never raises;
    always returns an ``int >= 1``.
    """
    try:
        return max(1, _estimate(request, model))
    except Exception:
        _log.debug("token estimate fell back to text length", exc_info=True)
        # The same output reserve as the exact path, so estimate - reserved_output() is
        # always the prompt (the context-window check relies on it).
        reserve = (
            reserved_output(request) if isinstance(request, ChatRequest) else DEFAULT_OUTPUT_RESERVE
        )
        return 1 + _REPLY_PRIMING + reserve + _heuristic_tokens(_text(request))


_MOST_PER_CHARACTER = 6
"""No count here gives a character more tokens: tiktoken at most one per UTF-8 byte (4),
the heuristic at most 1.95 for its class, 1.4 for a pair it starts and 1.6 for a run it
starts, times its margin (5.45), rounded up to at least one per text."""


def within(request: ChatRequest, tokens: int) -> bool:
    """Whether no :func:`estimate_tokens` of ``request``, for any model, exceeds ``tokens``,
    judged from lengths alone: a second route's context window is checked without counting
    (a call answered by its first route never needs the count). False when lengths cannot
    tell: structured values (tool schemas and arguments, a response schema) would have to
    be serialised, and text past :data:`_WHOLE` characters is sampled, not bounded.
    """
    if request.tools or request.response_schema is not None:
        return False
    bound = _REPLY_PRIMING + reserved_output(request)
    for message in request.messages:
        if message.tool_calls:
            return False
        bound += _PER_MESSAGE + _PER_NAME
        texts = [message.name, message.tool_call_id]
        if isinstance(message.content, str):
            texts.append(message.content)
        else:
            for part in message.content:
                if isinstance(part, Text | Reasoning):
                    texts.append(part.text)
                else:  # media: _content_tokens charges at most this
                    bound += max(_PER_IMAGE, len(getattr(part, "data", None) or b""))
        for text in texts:
            if text:
                if not isinstance(text, str) or len(text) > _WHOLE:
                    return False
                bound += _MOST_PER_CHARACTER * len(text) + 1
        if bound > tokens:
            return False
    return bound <= tokens


def usage_ceiling(
    request: ChatRequest,
    estimate: int,
    *,
    context_window: int | None = None,
    max_output: int | None = None,
) -> int:
    """The most tokens a reply to ``request`` can honestly report, given its ``estimate``.

    Settling a route's token window on provider-reported usage trusts the provider; one
    reply claiming ``10**15`` tokens would otherwise fill the window for every caller (and,
    shared over Redis, every process) until it slides past. The prompt counts at most
    :data:`USAGE_INPUT_FACTOR` times its estimate plus :data:`USAGE_INPUT_SLACK`, and never
    more than the model's context window; the output at most the request's ``max_tokens``,
    else the model's output limit, else its window, else :data:`UNKNOWN_OUTPUT_LIMIT`.
    Never below ``estimate``.
    """
    reserved = request.max_tokens or DEFAULT_OUTPUT_RESERVE
    prompt = max(0, estimate - reserved) * USAGE_INPUT_FACTOR + USAGE_INPUT_SLACK
    if context_window is not None:
        prompt = min(prompt, context_window)
    output = request.max_tokens or max_output or context_window or UNKNOWN_OUTPUT_LIMIT
    return max(estimate, prompt + output)
