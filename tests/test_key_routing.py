"""Environment keys go only to their own provider's endpoint.

A loopback server records the credential headers every request carries (``Authorization``,
``x-api-key``, ``x-goog-api-key``) and answers 401. With the family's key in the
environment, a ``Provider`` whose ``base_url`` is not the provider's own (a third party, a
proxy, a local server) and that gives no ``api_key`` must never send that key, in any
mode; the control cases (the same server named by the SDK's own base-URL variable, or an
explicit key) show the recorder does see keys when they are meant to go.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from resilient_llm import AuthError, Provider, ResilientLLM, ResilientLLMError, RetryPolicy
from resilient_llm.providers.base import ENV_BASE_URLS, ENV_KEYS

KINDS = ("openai", "anthropic", "gemini")
MODES = ("chat", "achat", "stream", "astream")
CANARY = "sk-env-canary-5150"
CREDENTIALS = ("authorization", "x-api-key", "x-goog-api-key")


class Recorder:
    """A loopback HTTP server that keeps every request's credential headers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                recorder.seen.append(
                    {k.lower(): v for k, v in self.headers.items() if k.lower() in CREDENTIALS}
                )
                body = json.dumps({"error": {"message": "who are you", "code": 401}}).encode()
                self.send_response(401)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, kind: str) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}/{kind}" + ("/v1" if kind == "openai" else "")

    def values(self) -> list[str]:
        return [value for headers in self.seen for value in headers.values()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    made = Recorder()
    yield made
    made.close()


@pytest.fixture
def env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every family's key variables hold the canary; no SDK base URL is configured."""
    for kind in KINDS:
        for variable in ENV_KEYS[kind]:
            monkeypatch.setenv(variable, CANARY)
        monkeypatch.delenv(ENV_BASE_URLS[kind], raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)


def _call(llm: ResilientLLM, mode: str) -> None:
    question = "What is the capital of France?"
    if mode == "chat":
        llm.chat(question)
    elif mode == "achat":
        asyncio.run(llm.achat(question))
    elif mode == "stream":
        list(llm.stream(question))
    else:

        async def drain() -> None:
            async for _ in llm.astream(question):
                pass

        asyncio.run(drain())


def _send(provider: Provider, mode: str) -> None:
    llm = ResilientLLM([provider], retry=RetryPolicy(max_retries=0), timeout=10)
    with llm, pytest.raises(ResilientLLMError) as info:  # the 401: AllProvidersFailed
        _call(llm, mode)
    assert isinstance(info.value.__cause__, AuthError)


@pytest.mark.usefixtures("env_keys")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_third_party_base_url_never_receives_the_environment_key(
    recorder: Recorder, kind: str, mode: str
) -> None:
    _send(Provider(kind, "m", base_url=recorder.url(kind)), mode)  # type: ignore[arg-type]
    assert len(recorder.seen) == 1
    assert recorder.values(), "the SDK sent no credential header at all"
    assert not any(CANARY in value for value in recorder.values()), recorder.seen


@pytest.mark.usefixtures("env_keys")
@pytest.mark.parametrize("kind", KINDS)
def test_the_key_goes_where_it_is_meant_to(
    recorder: Recorder, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Control 1: the operator named this server in the SDK's own base-URL variable.
    monkeypatch.setenv(ENV_BASE_URLS[kind], recorder.url(kind) + "/")
    _send(Provider(kind, "m", base_url=recorder.url(kind)), "chat")  # type: ignore[arg-type]
    # Control 2: no base_url at all, the SDK's variable names the server.
    _send(Provider(kind, "m"), "chat")  # type: ignore[arg-type]
    # Control 3: a key given to the Provider goes to any base_url.
    monkeypatch.delenv(ENV_BASE_URLS[kind])
    given = "sk-given-7777"
    _send(Provider(kind, "m", base_url=recorder.url(kind), api_key=given), "chat")  # type: ignore[arg-type]
    sent = [" ".join(headers.values()) for headers in recorder.seen]
    assert len(sent) == 3
    assert CANARY in sent[0]
    assert CANARY in sent[1]
    assert given in sent[2]
    assert CANARY not in sent[2]


@pytest.mark.parametrize(
    ("kind", "base_url", "takes"),
    [
        ("openai", None, True),
        ("openai", "https://api.openai.com/v1", True),
        ("openai", "https://API.OpenAI.com:443/v1/", True),
        ("anthropic", "https://api.anthropic.com", True),
        ("gemini", "https://generativelanguage.googleapis.com", True),
        ("openai", "http://api.openai.com/v1", False),  # not over TLS
        ("openai", "https://api.openai.com:8443/v1", False),
        ("openai", "https://api.openai.com.example.net/v1", False),
        ("openai", "https://api.openai.com@example.net/v1", False),
        ("openai", "https://api.groq.com/openai/v1", False),
        ("openai", "https://openrouter.ai/api/v1", False),
        ("openai", "https://api.anthropic.com/v1", False),  # another family's host
        ("anthropic", "https://api.openai.com", False),
        ("gemini", "https://generativelanguage.googleapis.com.evil.example", False),
        ("openai", "http://127.0.0.1:11434/v1", False),
    ],
)
def test_which_endpoints_take_an_environment_key(
    kind: str, base_url: str | None, takes: bool
) -> None:
    provider = Provider(kind, "m", base_url=base_url)  # type: ignore[arg-type]
    env = {variable: CANARY for variable in ENV_KEYS[kind]}
    assert provider.takes_env_key(env) is takes
    key = provider.resolve_key(env)
    assert (key is not None and key.reveal() == CANARY) is takes


def test_the_sdk_base_url_variable_must_match_exactly() -> None:
    provider = Provider("openai", "m", base_url="https://proxy.example.com/v1")
    env = {"OPENAI_API_KEY": CANARY}
    for configured, takes in [
        ("https://proxy.example.com/v1", True),
        ("https://proxy.example.com:443/v1/", True),
        ("https://proxy.example.com/v2", False),
        ("http://proxy.example.com/v1", False),
        ("https://other.example.com/v1", False),
        ("", False),
    ]:
        assert provider.takes_env_key({**env, "OPENAI_BASE_URL": configured}) is takes


def test_a_withheld_key_is_named_once_at_start_up_without_its_value(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with caplog.at_level(logging.WARNING, logger="resilient_llm"):
        ResilientLLM([Provider("openai", "llama", base_url="https://api.groq.com/openai/v1")])
        ResilientLLM([Provider("openai", "llama", base_url="http://127.0.0.1:11434/v1")])
        ResilientLLM([Provider("openai", "gpt-4o", base_url="https://api.openai.com/v1")])
    (record,) = caplog.records
    text = record.getMessage()
    assert "OPENAI_API_KEY is not sent to api.groq.com" in text
    assert CANARY not in text


# -- no key at all ------------------------------------------------------------------------


def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in KINDS:
        for variable in ENV_KEYS[kind]:
            monkeypatch.delenv(variable, raising=False)


@pytest.mark.parametrize("mode", MODES)
def test_with_no_keys_the_error_names_every_routes_variable(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    _no_keys(monkeypatch)
    llm = ResilientLLM(
        [
            Provider("openai", "gpt-4o-mini"),
            Provider("anthropic", "claude-haiku-4-5"),
            Provider("gemini", "gemini-2.5-flash"),
            Provider("openai", "gpt-4o"),
        ]
    )
    with pytest.raises(AuthError) as info:
        _call(llm, mode)
    assert str(info.value) == (
        "no API key for any route (openai: OPENAI_API_KEY; anthropic: ANTHROPIC_API_KEY; "
        "gemini: GOOGLE_API_KEY or GEMINI_API_KEY; openai:gpt-4o: OPENAI_API_KEY): set "
        "these environment variables or pass Provider(api_key=...)"
    )
    assert len(llm._adapters) == 0  # nothing was built, no SDK was asked


def test_one_route_with_a_key_is_enough_to_try(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_keys(monkeypatch)
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY)
    seen: list[str] = []

    def check(provider: Provider) -> Callable[[], None]:
        seen.append(provider.name)
        raise AssertionError("stop here")

    llm = ResilientLLM([Provider("openai", "a"), Provider("anthropic", "b")])
    monkeypatch.setattr(llm._adapters, "get", lambda call: check(call.route))
    with pytest.raises(AssertionError, match="stop here"):
        llm.chat("hi")
    assert seen == ["openai"]
