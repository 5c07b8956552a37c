"""The event-stream decoder the OpenAI stream reader uses: events come out the same however
the body is cut into chunks."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_llm.providers._sse import SSEDecoder

BODY = (
    b": a comment\r\n"
    b'data: {"a": 1}\n\n'
    b"event: delta\r\ndata: first line\r\ndata:second line\r\nid: 7\r\nretry: 10\r\n\r\n"
    b"data: \xc3\xa9t\xc3\xa9\r\r"
    b"data: [DONE]\n\n"
)
EVENTS = [
    ("", '{"a": 1}'),
    ("delta", "first line\nsecond line"),
    ("", "été"),
    ("", "[DONE]"),
]


def _decode(chunks: list[bytes]) -> list[tuple[str, str]]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.finish()


def test_fields_line_endings_and_comments() -> None:
    assert _decode([BODY]) == EVENTS


@settings(max_examples=300, deadline=None)
@given(cuts=st.lists(st.integers(0, len(BODY)), max_size=12))
def test_any_cut_of_the_body_gives_the_same_events(cuts: list[int]) -> None:
    edges = [0, *sorted(cuts), len(BODY)]
    chunks = [BODY[a:b] for a, b in itertools.pairwise(edges)]
    assert _decode(chunks) == EVENTS


def test_a_crlf_split_between_chunks_is_one_line_end() -> None:
    # Taken as two line ends, the CR and LF would dispatch the event before its second line.
    assert _decode([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [("", "a\nb")]


def test_an_event_the_body_does_not_end_is_dropped_and_a_last_blank_line_is_read() -> None:
    assert _decode([b"data: whole\n\ndata: cut"]) == [("", "whole")]
    assert _decode([b"data: x\r"]) == []  # a line, but no blank line to dispatch it
    assert _decode([b"data: x\r\r"]) == [("", "x")]  # CR line ends only, the last at EOF
