"""hints: every documented form, real provider header sets, and fuzzing of every parser.

The promise under test: whatever the network sends, a parser returns None or a finite wait in
[0, cap], and never raises. Negative numbers are malformed (None); past instants are 0.0.
"""

from __future__ import annotations

import email.message
import email.utils
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_llm.policies import hints
from resilient_llm.policies.hints import (
    DEFAULT_CAP,
    RateLimitHints,
    hints_from_headers,
    parse_duration,
    parse_gemini_retry_delay,
    parse_int,
    parse_retry_after,
    parse_retry_after_ms,
    parse_rfc3339_reset,
    retry_delay_from_gemini_error,
)

NOW = 1_764_032_523.0  # 2025-11-25T01:02:03Z, a fixed wall clock
HOSTILE = ["", "   ", "NaN", "nan", "inf", "-inf", "Infinity", "1e309", "1e3", "-0", "-5", "+5"]
HOSTILE += ["٣", "\uff13\uff10", "0x10", "1_000", "\x00", "3O", "abc", "1 2", "--1", "1..5"]


def sane(result: float | None, cap: float = DEFAULT_CAP) -> bool:
    """The module's promise for one result."""
    if result is None:
        return True
    if type(result) is not float or not math.isfinite(result) or math.copysign(1, result) < 0:
        return False  # copysign also catches -0.0
    # A NaN or negative cap is read as 0.
    return result <= cap if cap >= 0 else result == 0.0


def iso(seconds_from_now: float) -> str:
    return datetime.fromtimestamp(NOW + seconds_from_now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_exported_names() -> None:
    assert sorted(hints.__all__) == sorted(
        [
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
    )
    assert DEFAULT_CAP == 3600.0


# --- Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("30", 30.0), ("1.5", 1.5), (" 7 ", 7.0), ("0", 0.0), ("0.25", 0.25), (b"12", 12.0)],
)
def test_retry_after_seconds(value: Any, expected: float) -> None:
    assert parse_retry_after(value) == expected


@pytest.mark.parametrize("value", [None, *HOSTILE, 30, 1.5, object()])
def test_retry_after_rejects_malformed_and_negative(value: Any) -> None:
    # Negative delays are malformed, not "retry at once": None, like any other garbage.
    assert parse_retry_after(value, NOW) is None


def test_retry_after_huge_is_capped() -> None:
    assert parse_retry_after("99999999") == DEFAULT_CAP
    assert parse_retry_after("9" * 400) == DEFAULT_CAP  # float("9"*400) is inf
    assert parse_retry_after("120", cap=60.0) == 60.0


def test_retry_after_http_date() -> None:
    assert parse_retry_after(email.utils.formatdate(NOW + 120, usegmt=True), NOW) == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412400.0) == 80.0
    # The obsolete RFC 850 and asctime forms; asctime has no zone and is GMT, not local time.
    assert parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", 1445412400.0) == 80.0
    assert parse_retry_after("Wed Oct 21 07:28:00 2015", 1445412400.0) == 80.0


def test_retry_after_http_date_edges() -> None:
    date = email.utils.formatdate(NOW + 120, usegmt=True)
    assert parse_retry_after(date) is None  # no wall clock, no answer
    assert parse_retry_after(date, math.nan) is None
    assert parse_retry_after(date, math.inf) is None
    assert parse_retry_after(email.utils.formatdate(NOW - 500, usegmt=True), NOW) == 0.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW) == DEFAULT_CAP
    assert parse_retry_after("Mon, 1 Jan 99999 00:00:00 GMT", NOW) is None
    assert parse_retry_after("Wed, 45 Foo 2015 07:28:00 GMT", NOW) is None


@pytest.mark.parametrize(
    ("value", "expected"), [("1500", 1.5), ("0", 0.0), ("20.5", 0.0205), (" 250 ", 0.25)]
)
def test_retry_after_ms(value: str, expected: float) -> None:
    assert parse_retry_after_ms(value) == pytest.approx(expected)


@pytest.mark.parametrize("value", [None, *HOSTILE, "1500ms", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_retry_after_ms_rejects(value: str | None) -> None:
    assert parse_retry_after_ms(value) is None


def test_retry_after_ms_huge_is_capped() -> None:
    assert parse_retry_after_ms("999999999999") == DEFAULT_CAP
    assert parse_retry_after_ms("9" * 400, cap=5.0) == 5.0


# --- Go-style durations (OpenAI x-ratelimit-reset-*) ----------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("6m0s", 360.0),
        ("1.5s", 1.5),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        ("7", 7.0),
        ("2.5", 2.5),
        (".5s", 0.5),
        ("1us", 1e-6),
        ("1\u00b5s", 1e-6),  # MICRO SIGN, as Go prints it
        ("1\u03bcs", 1e-6),  # GREEK SMALL LETTER MU
        ("500ns", 5e-7),
        ("1m30s", 90.0),
        ("17ms", 0.017),
        (" 3s ", 3.0),
    ],
)
def test_duration(value: str, expected: float) -> None:
    assert parse_duration(value, cap=1e9) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [None, *HOSTILE, "s", "1x", "1 s", "-1s", "1h-2m", "1.2.3s", "ms", "1S", "1.5.5", "h1"],
)
def test_duration_rejects(value: str | None) -> None:
    assert parse_duration(value) is None


def test_duration_is_capped() -> None:
    assert parse_duration("1h2m3.5s") == DEFAULT_CAP
    assert parse_duration("9" * 400 + "h") == DEFAULT_CAP
    assert parse_duration("2562047h47m16.854775807s", cap=10.0) == 10.0


# --- RFC 3339 (anthropic-ratelimit-*-reset) -------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-11-25T01:02:13Z", 10.0),
        ("2025-11-25T01:02:13z", 10.0),
        ("2025-11-25 01:02:13Z", 10.0),
        ("2025-11-25T01:02:13+00:00", 10.0),
        ("2025-11-25T02:02:13+01:00", 10.0),
        ("2025-11-24T20:02:13-05:00", 10.0),
        ("2025-11-25T01:02:13.250Z", 10.25),
        ("2025-11-25T01:02:13.123456789+00:00", 10.123456789),
        ("2025-11-25T01:02:59Z", 56.0),
        ("2025-11-25T01:02:60Z", 57.0),  # a leap second
    ],
)
def test_rfc3339(value: str, expected: float) -> None:
    assert parse_rfc3339_reset(value, NOW) == pytest.approx(expected)


def test_rfc3339_past_is_zero_and_future_is_capped() -> None:
    assert parse_rfc3339_reset(iso(-30), NOW) == 0.0
    assert parse_rfc3339_reset("1970-01-01T00:00:00Z", NOW) == 0.0
    assert parse_rfc3339_reset("9999-12-31T23:59:59Z", NOW) == DEFAULT_CAP
    assert parse_rfc3339_reset(iso(7200), NOW, cap=60.0) == 60.0


@pytest.mark.parametrize(
    "value",
    [
        None,
        *HOSTILE,
        "2025-11-25",  # a date, not an instant
        "2025-11-25T01:02:13",  # no zone: ambiguous
        "2025-13-01T00:00:00Z",
        "2025-02-30T00:00:00Z",
        "2025-11-25T24:00:00Z",
        "2025-11-25T01:02:61Z",
        "2025-11-25T01:02:13+24:00",
        "0000-01-01T00:00:00Z",
        "2025-11-25T01:02:13.Z",
        "20251125T010213Z",
        "٢٠٢٥-11-25T01:02:13Z",
    ],
)
def test_rfc3339_rejects(value: str | None) -> None:
    assert parse_rfc3339_reset(value, NOW) is None


@pytest.mark.parametrize("wall_now", [math.nan, math.inf, -math.inf])
def test_rfc3339_needs_a_finite_wall_clock(wall_now: float) -> None:
    assert parse_rfc3339_reset(iso(10), wall_now) is None


# --- Gemini RetryInfo --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("30s", 30.0), ("1.5s", 1.5), ("0.250s", 0.25), ("0s", 0.0)]
)
def test_gemini_retry_delay(value: str, expected: float) -> None:
    assert parse_gemini_retry_delay(value) == expected


@pytest.mark.parametrize("value", [None, *HOSTILE, "30", "-1s", "s", "1e3s", "30ms", "1m"])
def test_gemini_retry_delay_rejects(value: str | None) -> None:
    assert parse_gemini_retry_delay(value) is None


def test_gemini_retry_delay_is_capped() -> None:
    assert parse_gemini_retry_delay("86400s") == DEFAULT_CAP
    assert parse_gemini_retry_delay("9" * 400 + "s", cap=1.0) == 1.0


GEMINI_429: dict[str, Any] = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaMetric": "generativelanguage.googleapis.com/x"}],
            },
            {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
        ],
    }
}


def test_gemini_error_shapes() -> None:
    assert retry_delay_from_gemini_error(GEMINI_429) == 37.0
    assert retry_delay_from_gemini_error(GEMINI_429["error"]) == 37.0
    assert retry_delay_from_gemini_error([GEMINI_429]) == 37.0  # streaming bodies are arrays
    assert retry_delay_from_gemini_error(json.dumps(GEMINI_429)) == 37.0
    assert retry_delay_from_gemini_error(json.dumps(GEMINI_429).encode()) == 37.0
    assert retry_delay_from_gemini_error(GEMINI_429, cap=10.0) == 10.0


def test_gemini_error_picks_the_first_usable_retry_info() -> None:
    retry = "type.googleapis.com/google.rpc.RetryInfo"
    details = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "retryDelay": "1s"},  # not it
        {"@type": retry, "retryDelay": "-5s"},  # malformed: skipped
        {"@type": retry, "retryDelay": 12},  # not text: skipped
        {"retryDelay": "4s"},  # no @type: taken as RetryInfo
        {"@type": retry, "retryDelay": "9s"},
    ]
    assert retry_delay_from_gemini_error({"error": {"details": details}}) == 4.0
    assert retry_delay_from_gemini_error({"details": details[:3]}) is None


class Hostile(dict[str, Any]):
    def get(self, *args: Any) -> Any:
        raise RuntimeError("boom")


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "body",
    [
        None,
        0,
        "",
        "garbage",
        "{}",
        b"\xff\xfe",
        [],
        {},
        {"error": "quota"},
        {"error": {"details": "x"}},
        {"error": {"details": [None, 1, "s", []]}},
        {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}},
        Hostile(),
        {"error": Hostile()},
        nested_json(100_000),  # json.loads recursion error
        '{"error": {"code": ' + "9" * 5000 + "}}",  # int conversion limit
        [[GEMINI_429]],  # only one level of list is looked into
    ],
)
def test_gemini_error_without_a_delay(body: object) -> None:
    assert retry_delay_from_gemini_error(body) is None


# --- parse_int ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("59", 59), (" 12 ", 12), ("0", 0), ("007", 7), (str(10**12), 10**12), (b"42", 42)],
)
def test_parse_int(value: Any, expected: int) -> None:
    assert parse_int(value) == expected


@pytest.mark.parametrize(
    "value", [None, *HOSTILE, "1.0", str(10**12 + 1), "9" * 5000, 5, 5.0, True, [], object()]
)
def test_parse_int_rejects(value: object) -> None:
    # Header values are text: an int object is as foreign as a list.
    assert parse_int(value) is None


# --- RateLimitHints and hints_from_headers ----------------------------------------------


def test_rate_limit_hints_empty() -> None:
    assert RateLimitHints().empty
    assert not RateLimitHints(remaining_tokens=0).empty
    assert not RateLimitHints(retry_after=0.0).empty
    with pytest.raises(AttributeError):
        RateLimitHints().retry_after = 1.0  # type: ignore[misc]


OPENAI_429 = {
    "Date": "Tue, 25 Nov 2025 01:02:03 GMT",
    "Content-Type": "application/json",
    "x-request-id": "req_0123456789abcdef",
    "openai-processing-ms": "12",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-limit-tokens": "2000000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-remaining-tokens": "0",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "1m26.4s",
    "retry-after": "87",
    "retry-after-ms": "86400",
}


def test_openai_headers() -> None:
    assert hints_from_headers(OPENAI_429, NOW) == RateLimitHints(
        retry_after=86.4,  # retry-after-ms is preferred: more precise
        limit_requests=10000,
        limit_tokens=2000000,
        remaining_requests=9999,
        remaining_tokens=0,
        reset_requests=0.006,
        reset_tokens=86.4,
    )


def test_retry_after_used_when_retry_after_ms_is_bad() -> None:
    result = hints_from_headers({"Retry-After": "3", "Retry-After-Ms": "soon"}, NOW)
    assert result == RateLimitHints(retry_after=3.0)
    date = email.utils.formatdate(NOW + 20, usegmt=True)
    assert hints_from_headers({"retry-after": date}, NOW).retry_after == 20.0


ANTHROPIC_429 = {
    "request-id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    "anthropic-organization-id": "00000000-0000-0000-0000-000000000000",
    "retry-after": "7",
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": iso(1),
    "anthropic-ratelimit-tokens-limit": "480000",
    "anthropic-ratelimit-tokens-remaining": "0",
    "anthropic-ratelimit-tokens-reset": iso(7),
    "anthropic-ratelimit-input-tokens-limit": "400000",
    "anthropic-ratelimit-input-tokens-remaining": "0",
    "anthropic-ratelimit-input-tokens-reset": iso(7),
    "anthropic-ratelimit-output-tokens-limit": "80000",
    "anthropic-ratelimit-output-tokens-remaining": "80000",
    "anthropic-ratelimit-output-tokens-reset": iso(0),
}


def test_anthropic_headers_keep_input_and_output_apart() -> None:
    assert hints_from_headers(ANTHROPIC_429, NOW) == RateLimitHints(
        retry_after=7.0,
        limit_requests=4000,
        remaining_requests=3999,
        reset_requests=1.0,
        limit_input_tokens=400000,
        remaining_input_tokens=0,
        reset_input_tokens=7.0,
        limit_output_tokens=80000,
        remaining_output_tokens=80000,
        reset_output_tokens=0.0,
    )


def test_anthropic_split_token_budgets() -> None:
    split = {k: v for k, v in ANTHROPIC_429.items() if "-ratelimit-tokens-" not in k}
    split["anthropic-ratelimit-input-tokens-remaining"] = "12345"
    split["anthropic-ratelimit-output-tokens-remaining"] = "678"
    split["anthropic-ratelimit-output-tokens-reset"] = iso(42)
    result = hints_from_headers(split, NOW)
    # Each is its own limit: merging them would charge the total to the smaller one.
    assert result.limit_tokens is None
    assert (result.remaining_input_tokens, result.remaining_output_tokens) == (12345, 678)
    assert result.reset_output_tokens == 42.0
    only_input = {"anthropic-ratelimit-input-tokens-reset": iso(5)}
    assert hints_from_headers(only_input, NOW) == RateLimitHints(reset_input_tokens=5.0)
    # The tokens-* family (the tightest of the two) is ignored beside them.
    both = {**split, "anthropic-ratelimit-tokens-limit": "80000"}
    assert hints_from_headers(both, NOW).limit_tokens is None


def test_resets_accept_either_form() -> None:
    headers = {"x-ratelimit-reset-requests": iso(3), "anthropic-ratelimit-tokens-reset": "2s"}
    result = hints_from_headers(headers, NOW)
    assert (result.reset_requests, result.reset_tokens) == (3.0, 2.0)


def test_header_containers() -> None:
    httpx = pytest.importorskip("httpx")
    expected = RateLimitHints(retry_after=2.0, remaining_requests=5)
    pairs = [("Retry-After", "2"), ("X-RateLimit-Remaining-Requests", "5")]
    assert hints_from_headers(httpx.Headers(pairs), NOW) == expected
    assert hints_from_headers(pairs, NOW) == expected
    raw: list[Any] = [(name.encode(), value.encode()) for name, value in pairs]
    assert hints_from_headers(raw, NOW) == expected  # raw header bytes are latin-1
    message = email.message.Message()
    for name, value in pairs:
        message[name] = value
    assert hints_from_headers(message, NOW) == expected  # type: ignore[arg-type]
    # The first of duplicate names wins; malformed pairs are skipped.
    odd: list[Any] = [("retry-after", "2"), ("Retry-After", "9"), ("x",), 5, (1, 2), None]
    assert hints_from_headers(odd, NOW) == RateLimitHints(retry_after=2.0)


class BrokenHeaders:
    def items(self) -> Iterator[tuple[str, str]]:
        yield ("retry-after", "4")
        raise RuntimeError("connection reset")


def endless() -> Iterator[tuple[str, str]]:
    while True:
        yield ("x-noise", "1")


@pytest.mark.parametrize("headers", [None, 5, "retry-after: 3", b"", object(), {}, [], endless()])
def test_headers_garbage_is_empty(headers: Any) -> None:
    assert hints_from_headers(headers, NOW).empty


def test_broken_headers_keep_what_was_read() -> None:
    assert hints_from_headers(BrokenHeaders(), NOW) == RateLimitHints(retry_after=4.0)  # type: ignore[arg-type]


def test_non_finite_wall_clock_drops_only_instants() -> None:
    headers = {**ANTHROPIC_429, "retry-after": email.utils.formatdate(NOW + 5, usegmt=True)}
    result = hints_from_headers(headers, math.nan)
    assert result.retry_after is None
    assert result.reset_requests is None
    assert result.reset_tokens is None
    assert result.remaining_requests == 3999


# --- fuzzing -----------------------------------------------------------------------------

floats = st.floats(allow_nan=True, allow_infinity=True)
caps = st.one_of(floats, st.sampled_from([0.0, 1.0, DEFAULT_CAP, 1e308]))
walls = st.one_of(floats, st.floats(min_value=0, max_value=4e9), st.just(NOW))
NUMBERISH = r"\s?[+-]?[0-9٣]{0,12}(\.[0-9]{0,4})?(e[+-]?[0-9]{1,3})?\s?"
HTTP_DATE = (
    r"(Mon|Wed|Thursday), ?[0-9]{1,3}[ -](Jan|Oct|Foo)[ -][0-9]{1,5} "
    r"[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}( (GMT|UTC|EST|[+-][0-9]{4}))?"
)
DURATION = r"-?([0-9]{0,25}(\.[0-9]{0,4})?(h|m|s|ms|us|µs|μs|ns|x|)){1,5}"
RFC3339 = (
    r"(19[0-9]{2}|20[0-9]{2}|9999|0000)-(0[0-9]|1[0-3])-([0-2][0-9]|3[0-2])[Tt ]"
    r"([01][0-9]|2[0-4]):[0-5][0-9]:([0-5][0-9]|6[01])(\.[0-9]{0,12})?"
    r"([Zz]|[+-]([01][0-9]|2[0-4]):[0-6][0-9])?"
)
GEMINI = r"-?[0-9]{0,12}(\.[0-9]{0,4})?(s|ms|)"
# Digit runs that overflow float() to inf; cheaper to list than to generate from a regex.
HUGE = [f"{'9' * 310}{unit}" for unit in ("", ".5", "s", "h", "ms", "1s", "h9s")]


def texts(*patterns: str) -> st.SearchStrategy[str]:
    regexes = (st.from_regex(p, fullmatch=True) for p in patterns)
    return st.one_of(st.text(), st.sampled_from(HUGE), *regexes)


@given(texts(NUMBERISH, HTTP_DATE), st.one_of(st.none(), walls), caps)
def test_fuzz_retry_after(value: str, wall_now: float | None, cap: float) -> None:
    assert sane(parse_retry_after(value, wall_now, cap), cap)


@given(texts(NUMBERISH), caps)
def test_fuzz_retry_after_ms(value: str, cap: float) -> None:
    assert sane(parse_retry_after_ms(value, cap), cap)


@given(texts(DURATION, NUMBERISH), caps)
def test_fuzz_duration(value: str, cap: float) -> None:
    assert sane(parse_duration(value, cap), cap)


@given(texts(RFC3339), walls, caps)
def test_fuzz_rfc3339(value: str, wall_now: float, cap: float) -> None:
    assert sane(parse_rfc3339_reset(value, wall_now, cap), cap)


@given(texts(GEMINI), caps)
def test_fuzz_gemini_retry_delay(value: str, cap: float) -> None:
    assert sane(parse_gemini_retry_delay(value, cap), cap)


@given(texts(NUMBERISH, r"[0-9]{10,14}"))
def test_fuzz_parse_int(value: str) -> None:
    result = parse_int(value)
    assert result is None or (type(result) is int and 0 <= result <= 10**12)


json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), floats, st.text(), texts(GEMINI))
json_keys = st.one_of(st.text(), st.sampled_from(["error", "details", "@type", "retryDelay"]))
retry_info = st.fixed_dictionaries(
    {"@type": st.sampled_from(["type.googleapis.com/google.rpc.RetryInfo", "x"])},
    optional={"retryDelay": st.one_of(texts(GEMINI), json_leaves)},
)
json_values = st.recursive(
    st.one_of(json_leaves, retry_info),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(json_keys, inner, max_size=4),
        st.fixed_dictionaries({"error": st.fixed_dictionaries({"details": st.lists(inner)})}),
        st.fixed_dictionaries({"details": st.lists(inner, max_size=4)}),
    ),
    max_leaves=20,
)


@settings(deadline=None)
@given(st.one_of(json_values, json_values.map(json.dumps)), caps)
def test_fuzz_gemini_error(body: object, cap: float) -> None:
    assert sane(retry_delay_from_gemini_error(body, cap), cap)


header_names = st.one_of(
    st.text(max_size=8),
    st.sampled_from(sorted({*OPENAI_429, *ANTHROPIC_429, "retry-after-ms"})).map(
        lambda name: name.upper() if len(name) % 2 else name
    ),
)
header_values = texts(NUMBERISH, DURATION, RFC3339, HTTP_DATE)


@settings(deadline=None, max_examples=60)
@given(st.dictionaries(header_names, header_values, max_size=12), walls, caps)
def test_fuzz_hints_from_headers(headers: dict[str, str], wall_now: float, cap: float) -> None:
    result = hints_from_headers(headers, wall_now, cap)
    for wait in (result.retry_after, result.reset_requests, result.reset_tokens):
        assert sane(wait, cap)
    for count in (
        result.limit_requests,
        result.limit_tokens,
        result.remaining_requests,
        result.remaining_tokens,
    ):
        assert count is None or 0 <= count <= 10**12


# --- round trips: the valid forms give back what was encoded ----------------------------


@given(st.integers(0, 10**12))
def test_int_round_trip(n: int) -> None:
    assert parse_int(str(n)) == n


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_duration_round_trip(h: int, m: int, s: int, ms: int) -> None:
    expected = h * 3600 + m * 60 + s + ms / 1000
    assert parse_duration(f"{h}h{m}m{s}.{ms:03d}s", cap=1e9) == pytest.approx(expected)


@given(st.integers(0, 10**6), st.floats(0, 4e9))
def test_http_date_round_trip(delay: int, wall: float) -> None:
    wall = float(int(wall))  # HTTP dates have whole seconds
    date = email.utils.formatdate(wall + delay, usegmt=True)
    assert parse_retry_after(date, wall, cap=1e9) == delay


@given(st.integers(-(10**6), 10**6), st.integers(-23 * 60, 23 * 60))
def test_rfc3339_round_trip(delay: int, offset_minutes: int) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    stamp = datetime.fromtimestamp(NOW + delay, UTC).astimezone(zone)
    assert parse_rfc3339_reset(stamp.isoformat(), NOW, cap=1e9) == max(delay, 0)
