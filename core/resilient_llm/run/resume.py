"""Continuing a stream that broke after text reached the caller (``stream_recovery``).

Without recovery a stream that breaks after its first chunk ends in ``StreamInterrupted``:
retrying would repeat what the caller has. With it, the answer is asked for again from
where the caller's text stops (:mod:`~resilient_llm.run.continuation`), as a new flow of
the call over its routes, the one that broke last: the continuation is an attempt like
any other, so the limiter, the breaker and the retry budget count it, and the call's
one deadline bounds it. Its text passes a :class:`~resilient_llm.run.seam.Seam`, so the
caller reads one answer, nothing twice. Tool calls and structured output are never
continued: half a JSON value and its rest from another model do not make one value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

from ..clock import Clock
from ..errors import ResilientLLMError, StreamInterrupted
from ..events import EventHandler, StreamResumed
from ..flow.call import Flow
from ..flow.effects import Call, Relay, StreamEnded
from ..messages import ChatChunk, ChatRequest, Usage
from ..policies.capabilities import Capabilities
from .continuation import StreamRecovery, continuation, form_for
from .drivers import AsyncRun, SyncRun
from .seam import Seam
from .stall import StreamTimeouts
from .starts import AsyncStreamStart, StreamStart, async_first_chunk, sync_first_chunk
from .stranded import Stranded

__all__ = ["Resumer", "Tally"]


class Tally:
    """What a relayed stream gave the caller, across its continuations."""

    def __init__(self, relay: Relay) -> None:
        self.route = relay.route.name
        self.text = ""
        self.usage: Usage | None = None  # the current part's latest report
        self.before: Usage | None = None  # the earlier parts' reports, summed
        self.said_other = False  # a tool call or refusal: nothing to continue
        self.seam: Seam | None = None
        self.resumed: list[dict[str, Any]] = []
        # What the next chunk out carries: the call's account, then each seam's.
        self._mark: Mapping[str, Any] | None = relay.report.metadata()

    def add(self, chunk: ChatChunk) -> ChatChunk | None:
        """The chunk as the caller gets it, or None while the seam holds its text back."""
        self.usage = chunk.usage or self.usage
        self.said_other = self.said_other or bool(chunk.tool_calls or chunk.refusal)
        delta = chunk.delta
        if self.seam is not None:
            delta = self.seam.feed(delta)
            if chunk.finish_reason is not None:
                delta += self.seam.flush()
        usage = _sum(self.before, chunk.usage) if chunk.usage is not None else None
        if not delta and chunk.delta and not _more(chunk):
            return None
        self.text += delta
        out = dataclasses.replace(chunk, delta=delta, usage=usage)
        return self._marked(out)

    def flush(self) -> ChatChunk | None:
        """The text the seam still holds, once its part ended or broke."""
        held = self.seam.flush() if self.seam is not None else ""
        if not held:
            return None
        self.text += held
        return self._marked(ChatChunk(delta=held, provider=self.route))

    def _marked(self, chunk: ChatChunk) -> ChatChunk:
        mark, self._mark = self._mark, None
        if mark is None:
            return chunk
        return dataclasses.replace(chunk, metadata={**chunk.metadata, **mark})

    def continued(self, relay: Relay, seam: Seam, record: dict[str, Any]) -> None:
        """A continuation took over from ``relay``'s first chunk."""
        self.before = _sum(self.before, self.usage)
        self.usage = None
        self.route = relay.route.name
        self.seam = seam
        self.resumed.append(record)
        self._mark = {
            "resumed": [dict(r) for r in self.resumed],
            "resume_report": relay.report.metadata(),
        }

    def ended(self, now: float) -> StreamEnded:
        # The limiter of the part's own route settles what that route reported.
        return StreamEnded(now, self.usage.total_tokens if self.usage else None)

    def interrupted(
        self, error: ResilientLLMError, failed: ResilientLLMError | None = None
    ) -> StreamInterrupted:
        why = f"the stream from {self.route!r} failed after its first chunk: {error.message}"
        if failed is not None:
            why += f"; it could not be continued: {failed.message}"
        return StreamInterrupted(
            why,
            partial_text=self.text,
            usage=_sum(self.before, self.usage),
            provider=self.route,
            status_code=error.status_code,
        )


def _more(chunk: ChatChunk) -> bool:
    return bool(chunk.usage or chunk.finish_reason or chunk.tool_calls or chunk.reasoning)


def _sum(a: Usage | None, b: Usage | None) -> Usage | None:
    if a is None or b is None:
        return b if a is None else a
    return Usage(*(getattr(a, f.name) + getattr(b, f.name) for f in dataclasses.fields(Usage)))


# What the engine gives a resumer: a route's family and capabilities, a new flow of the
# call over its routes (the one named last) for a request, and how to open a stream.
RouteFacts = Callable[[Call], tuple[str, Capabilities]]
FlowFor = Callable[[ChatRequest, str], Flow]
OpenWith = Callable[[Call, ChatRequest], Iterator[ChatChunk]]
AsyncOpenWith = Callable[[Call, ChatRequest], AsyncIterator[ChatChunk]]


@dataclasses.dataclass
class Resumer:
    """Continues one streamed call's answer after a break, while it can."""

    recovery: StreamRecovery
    request: ChatRequest
    clock: Clock
    emit: EventHandler
    facts: RouteFacts
    flow_for: FlowFor
    open_sync: OpenWith | None = None
    open_async: AsyncOpenWith | None = None
    timeouts: StreamTimeouts | None = None
    stranded: Stranded | None = None
    count: int = 0

    def can(self, tally: Tally) -> bool:
        request = self.request
        return (
            self.count < self.recovery.max_resumes
            and not tally.said_other
            and bool(tally.text.strip())
            and request.response_schema is None
            and not request.json_mode
        )

    def _attempts(self, tally: Tally) -> tuple[Flow, Callable[[Call], ChatRequest], list[Any]]:
        self.count += 1
        # Estimates (limiter, context window) for the longer of the two forms.
        longest, _ = continuation(self.request, tally.text, "instruction", "", self.recovery)
        flow = self.flow_for(longest, tally.route)
        opened: list[Any] = []

        def request_for(call: Call) -> ChatRequest:
            kind, caps = self.facts(call)
            form = form_for(kind, caps, self.request)
            request, seam = continuation(self.request, tally.text, form, kind, self.recovery)
            opened[:] = [seam, form]  # attempts are made one at a time: the last one won
            return request

        return flow, request_for, opened

    def _took_over(
        self, tally: Tally, relay: Relay, opened: list[Any], error: ResilientLLMError
    ) -> None:
        seam, form = opened
        record = {
            "at": len(tally.text),
            "from": tally.route,
            "to": relay.route.name,
            "form": form,
            "reason": type(error).__name__,
        }
        self.emit(
            StreamResumed(
                tally.route,
                self.clock.now(),
                relay.route.name,
                len(tally.text),
                str(form),
                type(error).__name__,
            )
        )
        tally.continued(relay, seam, record)

    def sync(
        self, tally: Tally, error: ResilientLLMError
    ) -> tuple[SyncRun[StreamStart], StreamStart, Relay]:
        """Start the continuation; its failure to start is the stream's interruption."""
        open_with = self.open_sync
        assert open_with is not None, "a sync stream's resumer opens sync streams"
        flow, request_for, opened = self._attempts(tally)
        first_chunk = sync_first_chunk(
            self.clock, lambda call: open_with(call, request_for(call)), self.timeouts
        )
        run: SyncRun[StreamStart] = SyncRun(flow, self.clock)
        try:
            start, stop = run.start(first_chunk)
        except ResilientLLMError as failed:
            raise tally.interrupted(error, failed) from failed
        if not isinstance(stop, Relay) or start is None:
            raise tally.interrupted(error) from error  # every route refused to go on
        self._took_over(tally, stop, opened, error)
        return run, start, stop

    async def asynchronous(
        self, tally: Tally, error: ResilientLLMError
    ) -> tuple[AsyncRun[AsyncStreamStart], AsyncStreamStart, Relay]:
        """The async twin of :meth:`sync`."""
        open_with = self.open_async
        assert open_with is not None, "an async stream's resumer opens async streams"
        flow, request_for, opened = self._attempts(tally)
        first_chunk = async_first_chunk(
            self.clock, lambda call: open_with(call, request_for(call)), self.timeouts
        )
        run: AsyncRun[AsyncStreamStart] = AsyncRun(flow, self.clock, self.stranded)
        try:
            start, stop = await run.start(first_chunk)
        except ResilientLLMError as failed:
            raise tally.interrupted(error, failed) from failed
        if not isinstance(stop, Relay) or start is None:
            raise tally.interrupted(error) from error
        self._took_over(tally, stop, opened, error)
        return run, start, stop
