"""Provider guidance about when to retry and how much quota is left.

These values come from the far side of the network, so every parser is total: whatever it is
handed (``None``, ``''``, garbage, negatives, ``NaN``, ``inf``, huge numbers, the wrong type)
it returns ``None`` ("no usable hint") or a finite number of seconds in ``[0, cap]``. Nothing
raises and nothing reads a clock: an absolute reset instant becomes a wait against the caller's
``wall_now`` (unix seconds). A *malformed* value, including any negative number, is ``None``,
never "retry at once"; a well-formed instant *in the past* is ``0.0`` (the quota has reset).
"""

from __future__ import annotations

import calendar
import email.utils
import itertools
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import TypeVar, cast

__all__ = [
    "DEFAULT_CAP",
    "RateLimitHints",
    "hints_from_headers",
    "parse_duration",
    "parse_gemini_retry_delay",
    "parse_int",
    "parse_retry_after",
    "parse_retry_after_ms",
    "parse_rfc3339_reset",
    "quotas_from_gemini_error",
    "quotas_from_openai_message",
    "retry_delay_from_gemini_error",
]

DEFAULT_CAP = 3600.0
"""Longest wait (seconds) any parser returns unless the caller passes another ``cap``."""

_N = TypeVar("_N", int, float)
_Headers = Mapping[str, str] | Iterable[tuple[str, str]]
_MAX_INT = 10**12
# Bounds the work done on a hostile headers object or error body (e.g. an endless iterator).
_MAX_ITEMS = 4096

# ASCII digits only: str.isdigit() and float() accept "٣" and other scripts' digits.
_NUM = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_NUMBER_RE = re.compile(_NUM)
_GEMINI_RE = re.compile(rf"({_NUM})s")
_INT_RE = re.compile(r"[0-9]+")
# "ms" before "m" so "20ms" is not read as 20 minutes followed by junk.
_UNIT = r"h|ms|m|s|us|ns"
_DURATION_RE = re.compile(rf"(?:{_NUM}(?:{_UNIT}))+")
_DURATION_PART_RE = re.compile(rf"({_NUM})({_UNIT})")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):(60|[0-5][0-9])(\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
# Every HTTP-date form names a month or weekday; without letters it is not a date.
_LETTERS_RE = re.compile(r"[A-Za-z]{3}")
_RETRY_INFO = "google.rpc.RetryInfo"

HINTED = ("retry-after", "x-ratelimit-", "anthropic-ratelimit-")
"""How every header name :func:`hints_from_headers` reads begins (lower-cased)."""


def _text(value: object) -> str | None:
    """The stripped text of a header value, or None for anything that is not text."""
    if isinstance(value, bytes | bytearray):
        # HTTP header bytes are latin-1 (httpx does the same); latin-1 decodes any byte.
        value = bytes(value).decode("latin-1")
    return value.strip() if isinstance(value, str) else None


def _real(value: object) -> float | None:
    """``value`` as a finite float, or None."""
    if isinstance(value, float) or (isinstance(value, int) and abs(value) < 2**1000):
        return float(value) if math.isfinite(value) else None
    return None  # not a number, or an int that float() would overflow on


def _bound(seconds: float, cap: float) -> float | None:
    """Clamp a wait into ``[0, cap]``; NaN means the input was nonsense."""
    # A NaN or negative cap is the caller's mistake: read as 0 rather than raise. An infinite
    # cap still yields a finite wait. ``> 0`` and ``max(0.0, ...)`` keep -0.0 out too.
    limit = min(cap, sys.float_info.max) if cap > 0 else 0.0
    return None if math.isnan(seconds) else float(min(max(0.0, seconds), limit))


def _number(value: object, cap: float, unit: float = 1.0) -> float | None:
    """A plain non-negative decimal, in ``unit``ths of a second, as bounded seconds."""
    text = _text(value)
    if text is None or not _NUMBER_RE.fullmatch(text):
        return None
    # Valid digits may still overflow to inf ("9" * 400); _bound turns that into the cap.
    return _bound(float(text) / unit, cap)


def parse_retry_after(
    value: str | None, wall_now: float | None = None, cap: float = DEFAULT_CAP
) -> float | None:
    """Seconds to wait from an RFC 9110 ``Retry-After`` value.

    Accepts delay-seconds (``"30"``), fractional seconds (``"1.5"``, which providers send)
    and an HTTP-date, which needs ``wall_now`` (``None`` without it; a past date is ``0.0``).
    """
    if (seconds := _number(value, cap)) is not None:
        return seconds
    text, now = _text(value), _real(wall_now)
    if text is None or now is None or not _LETTERS_RE.search(text):
        return None
    try:
        parts = email.utils.parsedate_tz(text)
        if parts is None:
            return None
        # timegm, not mktime_tz: a date without a zone is GMT per RFC 9110, not local time.
        instant = calendar.timegm(parts[:6]) - (parts[9] or 0)
    except Exception:
        # The stdlib parser is lax and has raised assorted errors on garbage across versions.
        return None
    return _bound(float(instant) - now, cap)


def parse_retry_after_ms(value: str | None, cap: float = DEFAULT_CAP) -> float | None:
    """Seconds to wait from a ``retry-after-ms`` value: ``"1500"`` is ``1.5``."""
    return _number(value, cap, unit=1000.0)


def parse_duration(value: str | None, cap: float = DEFAULT_CAP) -> float | None:
    """Seconds from an OpenAI ``x-ratelimit-reset-*`` value.

    That is Go's duration syntax without a sign: ``"6m0s"``, ``"1.5s"``, ``"20ms"``,
    ``"1h2m3.5s"``, ``"0s"`` (units ``h m s ms us µs ns``); a bare number is seconds.
    """
    # Go prints MICRO SIGN; people type GREEK SMALL LETTER MU.
    text = (_text(value) or "").replace("\u00b5s", "us").replace("\u03bcs", "us")
    if not _DURATION_RE.fullmatch(text):
        return _number(text, cap)
    total = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART_RE.findall(text))
    return _bound(total, cap)


def parse_rfc3339_reset(
    value: str | None, wall_now: float, cap: float = DEFAULT_CAP
) -> float | None:
    """Seconds from ``wall_now`` until an RFC 3339 instant (``anthropic-ratelimit-*-reset``).

    ``"2026-11-25T01:02:03Z"``, with a fraction or a ``+hh:mm`` offset; a past instant is
    ``0.0``. Date-only or zone-less values are ``None``: their instant is ambiguous.
    """
    text, now = _text(value), _real(wall_now)
    match = None if text is None else _RFC3339_RE.fullmatch(text)
    if match is None or now is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zulu, sign, off_h, off_m = match.groups()[6:]
    offset = timedelta(0) if zulu else timedelta(hours=int(off_h), minutes=int(off_m))
    try:
        zone = timezone(-offset if sign == "-" else offset)
        # RFC 3339 allows a leap second (":60"); datetime does not, so add it afterwards.
        instant = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=zone).timestamp()
    except (ValueError, OverflowError):  # out-of-range fields or offset
        return None
    instant += max(second - 59, 0) + (float(fraction) if fraction else 0.0)
    return _bound(instant - now, cap)


def parse_gemini_retry_delay(value: str | None, cap: float = DEFAULT_CAP) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` ``retryDelay`` (``"30s"``, ``"0.250s"``)."""
    text = _text(value)
    match = None if text is None else _GEMINI_RE.fullmatch(text)
    return None if match is None else _bound(float(match.group(1)), cap)


def _items(value: object) -> Iterable[object]:
    """The first items of a list or tuple (bounded: the body may be hostile); else none."""
    return itertools.islice(value, _MAX_ITEMS) if isinstance(value, list | tuple) else ()


def retry_delay_from_gemini_error(body: object, cap: float = DEFAULT_CAP) -> float | None:
    """The first usable ``RetryInfo.retryDelay`` in a parsed Gemini error body, else None.

    Takes ``{"error": {"details": [...]}}``, the inner error dict, a list of either, or the
    JSON text of any of these; any other shape is ``None``.
    """
    try:
        if isinstance(body, str | bytes | bytearray):
            body = json.loads(body)
        for error in _items(body if isinstance(body, list | tuple) else [body]):
            if isinstance(error, Mapping) and isinstance(error.get("error"), Mapping):
                error = error["error"]
            for detail in _items(error.get("details") if isinstance(error, Mapping) else None):
                if not isinstance(detail, Mapping):
                    continue
                kind, raw = detail.get("@type", _RETRY_INFO), detail.get("retryDelay")
                if isinstance(kind, str) and kind.endswith(_RETRY_INFO) and isinstance(raw, str):
                    delay = parse_gemini_retry_delay(raw, cap)
                    if delay is not None:
                        return delay
    except Exception:
        # Text that is not JSON (or too deep, or with too large a number) and hostile
        # Mappings (raising get, unhashable keys) are "no hint", not a failure.
        return None
    return None


_QUOTA_FAILURE = "google.rpc.QuotaFailure"
_QUOTA_KINDS = (
    ("InputTokens", "input_tokens"),
    ("OutputTokens", "output_tokens"),
    ("Requests", "requests"),
    ("Tokens", "tokens"),
)
_QUOTA_SPANS = (("PerDay", 86400.0), ("PerMinute", 60.0), ("PerHour", 3600.0))


def quotas_from_gemini_error(body: object) -> tuple[tuple[str, float, int | None], ...]:
    """The quotas a Gemini 429 says ran out: ``(kind, window seconds, limit or None)`` per
    ``QuotaFailure`` violation whose ``quotaId`` names both (``GenerateRequestsPerDay...``);
    the limit is its ``quotaValue`` when given. Any other shape is ``()``."""
    found: list[tuple[str, float, int | None]] = []
    try:
        if isinstance(body, str | bytes | bytearray):
            body = json.loads(body)
        error = body.get("error", body) if isinstance(body, Mapping) else None
        for detail in _items(error.get("details") if isinstance(error, Mapping) else None):
            if not isinstance(detail, Mapping):
                continue
            kind = detail.get("@type")
            if not isinstance(kind, str) or not kind.endswith(_QUOTA_FAILURE):
                continue
            for violation in _items(detail.get("violations")):
                if not isinstance(violation, Mapping):
                    continue
                quota_id = violation.get("quotaId")
                if not isinstance(quota_id, str):
                    continue
                what = next((w for name, w in _QUOTA_KINDS if name in quota_id), None)
                span = next((s for name, s in _QUOTA_SPANS if name in quota_id), None)
                if what is not None and span is not None:
                    value = violation.get("quotaValue")
                    limit = value if isinstance(value, int) else parse_int(value)
                    found.append((what, span, limit if limit and limit > 0 else None))
    except Exception:
        # Hostile or unparsable bodies are "no hint", as for RetryInfo.
        return ()
    return tuple(found[:8])


# "... on requests per day (RPD): Limit 200, Used 200, Requested 1. Please try again ..."
_OPENAI_QUOTA_RE = re.compile(
    r"on (requests|tokens) per (min|day) \((?:RPM|TPM|RPD|TPD)\): Limit ([0-9]{1,13})\b"
)


def quotas_from_openai_message(message: object) -> tuple[tuple[str, float, int | None], ...]:
    """The quota an OpenAI 429's message names (``requests per day (RPD): Limit 200``),
    as :func:`quotas_from_gemini_error` gives them; ``()`` for anything else."""
    if not isinstance(message, str):
        return ()
    match = _OPENAI_QUOTA_RE.search(message[:4096])
    if match is None:
        return ()
    what, span, limit = match.groups()
    value = int(limit)
    return ((what, 86400.0 if span == "day" else 60.0, value if value > 0 else None),)


def parse_int(value: object) -> int | None:
    """A non-negative integer header value (``"59"``, ``" 12 "``), else None.

    Negatives, fractions, signs, non-ASCII digits and values above 10**12 are None.
    """
    text = _text(value)
    # The length check comes first so int() never sees a huge digit string.
    if text is None or len(text) > 13 or not _INT_RE.fullmatch(text):
        return None
    number = int(text)
    return number if number <= _MAX_INT else None


@dataclass(frozen=True)
class RateLimitHints:
    """What a response's headers said about rate limits; ``None`` means "not said".

    Waits are seconds from the response, clamped to ``[0, cap]``; counts are in [0, 10**12].
    """

    retry_after: float | None = None
    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None
    reset_tokens: float | None = None
    limit_input_tokens: int | None = None
    remaining_input_tokens: int | None = None
    reset_input_tokens: float | None = None
    limit_output_tokens: int | None = None
    remaining_output_tokens: int | None = None
    reset_output_tokens: float | None = None
    # Quotas a 429 named as run out: (kind, window seconds, limit or None), kind one of
    # "requests", "tokens", "input_tokens", "output_tokens" (Gemini's QuotaFailure).
    exhausted: tuple[tuple[str, float, int | None], ...] = ()

    @property
    def empty(self) -> bool:
        """True when no header gave any hint."""
        return not self.exhausted and all(
            getattr(self, f.name) is None for f in fields(self) if f.name != "exhausted"
        )


_NO_HINTS_AT_ALL = RateLimitHints()


def _header_map(headers: object) -> dict[str, str]:
    """Lower-cased header names to values; the first occurrence of a name wins."""
    found: dict[str, str] = {}
    try:
        # Mappings, httpx/requests/aiohttp headers and email.message.Message all have items().
        items = getattr(headers, "items", None)
        pairs = items() if callable(items) else headers
        # None, ints and other non-iterables raise TypeError here, and mean "no headers".
        for pair in itertools.islice(cast("Iterable[object]", pairs), _MAX_ITEMS):
            if isinstance(pair, tuple | list) and len(pair) == 2:
                name, value = _text(pair[0]), _text(pair[1])
                if name is not None and value is not None:
                    found.setdefault(name.lower(), value)
    except Exception:  # a broken headers object yields what was read before it broke
        pass
    return found


def _first(*values: _N | None) -> _N | None:
    return next((v for v in values if v is not None), None)


def hints_from_headers(
    headers: _Headers | None, wall_now: float, cap: float = DEFAULT_CAP
) -> RateLimitHints:
    """Rate-limit hints from response headers (names are case-insensitive).

    ``retry_after`` prefers ``retry-after-ms`` (more precise) over ``retry-after``. OpenAI's
    ``x-ratelimit-*`` come before Anthropic's ``anthropic-ratelimit-*``. Anthropic's
    ``input-tokens-*`` and ``output-tokens-*`` are kept apart (each is its own limit); its
    ``tokens-*`` (the most restrictive of them) is read as a token limit only when they are
    absent. A reset may be a duration or an RFC 3339 instant.
    """
    h = _header_map(headers)
    if not any(name.startswith(HINTED) for name in h):
        return _NO_HINTS_AT_ALL
    a = "anthropic-ratelimit-"

    def reset(value: str | None) -> float | None:
        return _first(parse_duration(value, cap), parse_rfc3339_reset(value, wall_now, cap))

    split = any(name.startswith((f"{a}input-tokens-", f"{a}output-tokens-")) for name in h)

    def pick(parse: Callable[[str | None], _N | None], what: str, kind: str) -> _N | None:
        names = [f"x-ratelimit-{kind}-{what}"]
        if what != "tokens" or not split:
            names.append(f"{a}{what}-{kind}")
        return _first(*(parse(h.get(name)) for name in names))

    return RateLimitHints(
        retry_after=_first(
            parse_retry_after_ms(h.get("retry-after-ms"), cap),
            parse_retry_after(h.get("retry-after"), wall_now, cap),
        ),
        limit_requests=pick(parse_int, "requests", "limit"),
        limit_tokens=pick(parse_int, "tokens", "limit"),
        remaining_requests=pick(parse_int, "requests", "remaining"),
        remaining_tokens=pick(parse_int, "tokens", "remaining"),
        reset_requests=pick(reset, "requests", "reset"),
        reset_tokens=pick(reset, "tokens", "reset"),
        limit_input_tokens=parse_int(h.get(f"{a}input-tokens-limit")),
        remaining_input_tokens=parse_int(h.get(f"{a}input-tokens-remaining")),
        reset_input_tokens=reset(h.get(f"{a}input-tokens-reset")),
        limit_output_tokens=parse_int(h.get(f"{a}output-tokens-limit")),
        remaining_output_tokens=parse_int(h.get(f"{a}output-tokens-remaining")),
        reset_output_tokens=reset(h.get(f"{a}output-tokens-reset")),
    )
