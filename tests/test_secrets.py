"""A canary API key must never surface: not in logs, events, reprs, errors or snapshots."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from resilient_llm import (
    BreakerPolicy,
    FakeClock,
    Provider,
    ResilientLLM,
    ResilientLLMError,
    RetryPolicy,
)
from resilient_llm.events import Event
from resilient_llm.testing.chaos import ChaosServer, Fault

CANARY = "sk-canary-7f3e9b2c"
FAULTS = ("rate_limit", "overloaded", "auth", "malformed", "truncate", "bad_request", "reset")


def test_no_trace_of_the_key_anywhere(caplog: pytest.LogCaptureFixture) -> None:
    events: list[Event] = []
    seen: list[object] = []
    with ChaosServer() as server:
        providers = [
            Provider(kind, model, base_url=server.base_url(kind), api_key=CANARY)  # type: ignore[arg-type]
            for kind, model in (
                ("openai", "gpt-4o-mini"),
                ("anthropic", "claude-haiku-4-5"),
                ("gemini", "gemini-2.5-flash"),
            )
        ]
        llm = ResilientLLM(
            providers,
            retry=RetryPolicy(max_retries=1, base=0.01),
            breaker=BreakerPolicy(failure_threshold=2, cooldown=1.0),
            clock=FakeClock(),
            on_event=events.append,
            timeout=5,
        )
        with caplog.at_level(logging.DEBUG):
            for fault in FAULTS:
                for kind in ("openai", "anthropic", "gemini"):
                    server.script(kind, Fault(fault))
                for call in (
                    lambda: llm.chat("What is the capital of France?"),
                    lambda: asyncio.run(llm.achat("What is the capital of France?")),
                    lambda: list(llm.stream("What is the capital of France?")),
                ):
                    try:
                        seen.append(call())
                    except ResilientLLMError as error:
                        seen += [error, error.__cause__]
                llm.clock.advance(2.0)  # type: ignore[attr-defined]
                for route in llm.routes:
                    route.enable()
        snapshot = llm.snapshot()
        seen += [llm, snapshot, snapshot.to_dict(), *llm.providers, *events]
        llm.close()

    assert any(isinstance(item, ResilientLLMError) for item in seen)
    texts = [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    for item in seen:
        texts += [repr(item), str(item)]
        if isinstance(item, ResilientLLMError):
            texts.append(repr(pickle.dumps(item)))
    texts.append(repr(pickle.dumps(snapshot)))
    leaks = [text for text in texts if CANARY in text]
    assert leaks == []


# A provider that echoes the key it was sent in its error body, as real APIs do for a bad
# key ("Incorrect API key provided: sk-..."). The engine's own message is redacted; the
# SDK's exception it chains as ``__cause__`` must be too.
ECHOED = "sk-canary-echo-4d1a8e6b5c0f"
FRAGMENT = "4d1a8e6b5c0f"  # no part of the key: its distinctive tail
ECHO_STATUSES = (401, 500)


def _echo_body(path: str, key: str, status: int) -> dict[str, object]:
    text = f"Incorrect API key provided: {key}. You can find your API key in your account."
    if "/messages" in path:
        kind = "authentication_error" if status == 401 else "api_error"
        return {"type": "error", "error": {"type": kind, "message": text}}
    if ":generateContent" in path or ":streamGenerateContent" in path:
        state = "UNAUTHENTICATED" if status == 401 else "INTERNAL"
        return {
            "error": {
                "code": status,
                "message": text,
                "status": state,
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "key": key}],
            }
        }
    return {"error": {"message": text, "type": "invalid_request_error", "code": key}}


class _EchoHandler(BaseHTTPRequestHandler):
    status = 401

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        key = (
            self.headers.get("x-api-key")
            or self.headers.get("x-goog-api-key")
            or (self.headers.get("authorization") or "").removeprefix("Bearer ")
        )
        body = json.dumps(_echo_body(self.path, key, self.status)).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module", params=ECHO_STATUSES)
def echo_server(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (_EchoHandler,), {"status": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _echo_call(llm: ResilientLLM, mode: str) -> object:
    if mode == "chat":
        return llm.chat("hi")
    if mode == "achat":
        return asyncio.run(llm.achat("hi"))
    if mode == "stream":
        return list(llm.stream("hi"))

    async def collect() -> list[object]:
        return [chunk async for chunk in llm.astream("hi")]

    return asyncio.run(collect())


def _chain(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        link = pending.pop()
        if link is None or any(link is f for f in found):
            continue
        found.append(link)
        pending += [link.__cause__, link.__context__]
    return found


def _http_texts(exc: BaseException) -> list[str]:
    """What an SDK exception keeps of the exchange: body, response text, request headers."""
    texts = [repr(vars(exc))]
    response = getattr(exc, "response", None)
    if response is not None:
        # httpx's text is a property; aiohttp's a coroutine over the kept ``_body``.
        text = getattr(response, "text", None)
        texts.append(text if isinstance(text, str) else repr(getattr(response, "_body", "")))
        request = getattr(response, "_request", None)
        if request is not None:
            texts.append(repr(dict(request.headers)))
    return texts


@pytest.mark.parametrize("mode", ["chat", "achat", "stream", "astream"])
@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_a_key_echoed_by_the_provider_is_not_in_the_chained_errors(
    echo_server: str, kind: str, mode: str
) -> None:
    prefix = {"openai": "/v1", "anthropic": "", "gemini": ""}[kind]
    provider = Provider(kind, "m", base_url=echo_server + prefix, api_key=ECHOED)  # type: ignore[arg-type]
    llm = ResilientLLM([provider], retry=RetryPolicy(max_retries=0), clock=FakeClock(), timeout=5)
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(logging.Formatter().format(record))  # type: ignore[method-assign]
    logger = logging.getLogger("test_secrets.echo")
    logger.addHandler(handler)
    try:
        with pytest.raises(ResilientLLMError) as info:
            _echo_call(llm, mode)
        error = info.value
        logger.error("the call failed", exc_info=error)
    finally:
        logger.removeHandler(handler)
        llm.close()

    chain = _chain(error)
    assert len(chain) >= 2, "the SDK's exception is kept as the cause"
    texts = ["".join(traceback.format_exception(error)), *records, repr(pickle.dumps(error))]
    for link in chain:
        texts += [repr(link), str(link), repr(link.args), *_http_texts(link)]
    leaks = [text for text in texts if FRAGMENT in text]
    assert leaks == []
    # The provider did echo the key: without the redaction the chain would hold it.
    assert any("***" in text for text in texts)
