"""Carrying out a decision: errors, answers, streams, and the broken ones.

How a fault looks on the wire, the same for every protocol: ``hang`` waits (its ``delay``,
default 3600 s, or until the client leaves or the server stops) then resets; ``reset``
aborts the TCP connection (RST) with no response; ``malformed`` sends half a JSON body, or a
garbage SSE frame after the stream's start; ``truncate`` sends half a body under a full
``Content-Length``, or the stream's start and half its content, then closes (FIN) without
the terminal event; ``stream_error`` sends the first content then the protocol's in-band
error (without a stream it answers ``overloaded``); ``reset_mid_stream`` sends the first
content then aborts the connection (RST; without a stream it is ``reset``);
``slow_first_token`` sends the stream's headers at once and its first frame after ``delay``
(default 1 s); ``stall`` sends the stream's start and first content, then nothing for
``delay`` (default 3600 s, or until the server stops), then the rest (without a stream it
answers after ``delay``).

Hung providers, as clients meet them: ``blackhole`` accepts the request and never answers
(no status, no reset: the connection stays open until the client leaves or the server
stops); ``hang_after_headers`` sends the status and headers at once (a non-stream reply
with its ``Content-Length``), then nothing; ``trickle`` sends the status and headers, then
the body one byte every ``delay`` (default 1 s), so no read ever waits long enough for a
per-read timeout.

A slow but live provider: ``steady`` streams its frames one every ``delay`` (default 1 s),
the first one included, as a model that generates slowly; without a stream the whole reply
comes after ``delay`` per frame it would have streamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import socket
import struct
import termios
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import web

from .brain import Answer, answer
from .plan import Fault
from .state import Decision
from .wire import ErrorKind, Exchange, Wire

__all__ = ["Pause", "respond"]

Pause = Callable[[float], Awaitable[None]]
"""Sleeps real time, ending early when the server stops."""

_ERRORS: frozenset[str] = frozenset(
    {"rate_limit", "overloaded", "server_error", "unavailable", "bad_request"}
    | {"auth", "not_found", "context_length"}
)
_HANG = 3600.0
_SLOW_FIRST_TOKEN = 1.0
_TRICKLE = 1.0
_STEADY = 1.0
_SILENT = frozenset(
    {"hang", "slow_first_token", "blackhole", "hang_after_headers", "trickle", "steady"}
)


async def respond(
    request: web.Request,
    wire: Wire,
    ex: Exchange,
    d: Decision,
    sent: list[int],
    pause: Pause,
) -> web.StreamResponse:
    """Answer ``ex`` as decided; ``sent[0]`` gets the HTTP status once one is sent."""
    fault, kind = d.fault, d.fault.kind
    quiet = kind in _SILENT or (kind == "stall" and ex.stream)
    await pause(d.latency + (0.0 if quiet else fault.delay))
    if kind == "hang":
        await pause(fault.delay or _HANG)
        return _abort(request)
    if kind == "blackhole":
        await pause(fault.delay or _HANG)
        return _close(request, web.StreamResponse())
    if kind == "reset" or (kind == "reset_mid_stream" and not ex.stream):
        return _abort(request)
    if kind in _ERRORS or (kind == "stream_error" and not ex.stream):
        error = cast(ErrorKind, "overloaded" if kind == "stream_error" else kind)
        retry = fault.retry_after
        retry = 1.0 if retry is None and kind == "rate_limit" else retry
        named = None if d.violation is None else (d.violation.gemini_id, d.violation.limit)
        status, payload = wire.error(error, ex, retry, d.message, named)
        sent[0] = status
        headers = wire.headers(d.quota, retry)
        return web.json_response(payload, status=status, headers=headers)
    reply = answer(ex.ask)
    headers = wire.headers(d.quota, None)
    if kind in ("hang_after_headers", "trickle"):
        return await _slow_body(request, wire, ex, fault, reply, headers, sent, pause)
    if not ex.stream:
        if kind == "steady":
            frames = wire.frames(ex, reply)
            await pause((fault.delay or _STEADY) * len([*frames.head, *frames.body]))
        data = json.dumps(wire.reply(ex, reply)).encode()
        sent[0] = 200
        if kind == "malformed":
            return web.Response(
                body=data[: len(data) // 2], headers=headers, content_type="application/json"
            )
        if kind != "truncate":
            return web.Response(body=data, headers=headers, content_type="application/json")
        response = web.StreamResponse(headers=headers)
        response.content_type = "application/json"
        response.content_length = len(data)
        with contextlib.suppress(ConnectionError):  # the client left first
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
        return _close(request, response)
    return await _stream(request, wire, ex, fault, reply, headers, sent, pause)


async def _stream(
    request: web.Request,
    wire: Wire,
    ex: Exchange,
    fault: Fault,
    reply: Answer,
    headers: dict[str, str],
    sent: list[int],
    pause: Pause,
) -> web.StreamResponse:
    frames = wire.frames(ex, reply)
    response = web.StreamResponse(headers={**headers, "Cache-Control": "no-cache"})
    response.content_type = "text/event-stream"
    if fault.kind == "truncate":
        frames_out = frames.head + frames.body[: max(1, len(frames.body) // 2)]
    elif fault.kind == "malformed":
        frames_out = [*frames.head, wire.garbage()]
    elif fault.kind == "stream_error":
        frames_out = [*frames.head, *frames.body[:1], wire.stream_error()]
    elif fault.kind == "reset_mid_stream":
        frames_out = [*frames.head, *frames.body[:1]]
    else:
        frames_out = [*frames.head, *frames.body, *frames.tail]
    try:
        await response.prepare(request)
        sent[0] = 200
        if fault.kind == "slow_first_token":
            await pause(fault.delay or _SLOW_FIRST_TOKEN)
        for index, frame in enumerate(frames_out):
            if fault.kind == "stall" and index == len(frames.head) + 1:
                await pause(fault.delay or _HANG)
            if fault.kind == "steady":
                await pause(fault.delay or _STEADY)
            await response.write(frame)
        if fault.kind == "truncate":
            return _close(request, response)
        if fault.kind == "reset_mid_stream":
            await _delivered(request)
            return _abort(request)
        await response.write_eof()
    except ConnectionError:
        # The client left mid-stream (e.g. closed it after the first chunk): not an error
        # of ours. aiohttp's own final write then fails quietly too.
        pass
    return response


async def _slow_body(
    request: web.Request,
    wire: Wire,
    ex: Exchange,
    fault: Fault,
    reply: Answer,
    headers: dict[str, str],
    sent: list[int],
    pause: Pause,
) -> web.StreamResponse:
    """The status and headers now; then nothing (``hang_after_headers``) or the body a
    byte at a time (``trickle``)."""
    if ex.stream:
        frames = wire.frames(ex, reply)
        data = b"".join([*frames.head, *frames.body, *frames.tail])
        response = web.StreamResponse(headers={**headers, "Cache-Control": "no-cache"})
        response.content_type = "text/event-stream"
    else:
        data = json.dumps(wire.reply(ex, reply)).encode()
        response = web.StreamResponse(headers=headers)
        response.content_type = "application/json"
        response.content_length = len(data)
    try:
        await response.prepare(request)
        sent[0] = 200
        if fault.kind == "hang_after_headers":
            await pause(fault.delay or _HANG)
            return _close(request, response)
        for index in range(len(data)):
            if index:
                await pause(fault.delay or _TRICKLE)
            await response.write(data[index : index + 1])
        await response.write_eof()
    except ConnectionError:
        pass  # the client gave up first, as it should
    return response


async def _delivered(request: web.Request) -> None:
    """Wait (briefly) until what was written has left this host: a reset discards what is
    still queued here, while what reached the client is read before the reset."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    for _ in range(400):
        if transport is None or transport.get_write_buffer_size() == 0:
            queued = _queued(sock)
            if queued == 0:
                return
        await asyncio.sleep(0.005)


def _queued(sock: socket.socket | None) -> int:
    """Bytes the kernel has not yet sent and seen acknowledged (0 where it cannot say)."""
    if sock is None or not hasattr(termios, "TIOCOUTQ"):
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])


def _abort(request: web.Request) -> web.StreamResponse:
    """Reset the connection (RST, no response); aiohttp's later write then fails quietly."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=204)


def _close(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Close the connection after what was written (FIN), leaving the body incomplete."""
    if request.transport is not None:
        request.transport.close()
    return response
