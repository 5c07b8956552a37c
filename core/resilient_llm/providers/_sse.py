"""Server-sent events from a body's bytes as they arrive, as a pure decoder (no I/O).

What an OpenAI-protocol stream needs of the event-stream format (WHATWG HTML, "Parsing an
event stream"): lines end in CR, LF or CRLF, possibly split across chunks; ``data`` lines
of one event are joined by LF; a blank line dispatches the event; comment lines (``:``)
and other fields (``id``, ``retry``) are skipped; an event not ended by a blank line when
the body ends is dropped. Decoding whole chunks at once, not an event at a time through
nested generators, keeps a stream read cheap in CPU and in objects for the collector.
"""

from __future__ import annotations

__all__ = ["SSEDecoder"]


class SSEDecoder:
    """Feed it chunks; it returns the ``(event, data)`` pairs each completes."""

    __slots__ = ("_data", "_event", "_rest")

    def __init__(self) -> None:
        self._rest = b""
        self._data: list[str] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        """The events ``chunk`` completes, in order."""
        buffer = self._rest + chunk if self._rest else chunk
        lines = buffer.splitlines(keepends=True)
        # A last line without its ending waits for the next chunk; so does one ending in
        # CR, whose LF may come next (a CRLF split in two is one line end, not two).
        if lines and not lines[-1].endswith(b"\n"):
            self._rest = lines.pop()
        else:
            self._rest = b""
        return self._lines(lines)

    def finish(self) -> list[tuple[str, str]]:
        """At the end of the body: a last line is read, an undispatched event dropped."""
        rest, self._rest = self._rest, b""
        events = self._lines([rest]) if rest else []
        self._data, self._event = [], ""
        return events

    def _lines(self, lines: list[bytes]) -> list[tuple[str, str]]:
        events: list[tuple[str, str]] = []
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if not line:
                if self._data:
                    events.append((self._event, "\n".join(self._data)))
                self._data, self._event = [], ""
                continue
            if line[:1] == b":":
                continue
            name, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value.decode("utf-8", "replace"))
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        return events
