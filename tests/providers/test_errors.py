"""Keys, error mapping helpers and the per-SDK mapping functions' edge cases."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable

import anthropic
import httpx2
import openai
import pytest
from google.genai import errors as genai_errors

from resilient_llm.errors import (
    AuthError,
    BadRequest,
    ContextLengthExceeded,
    ProviderUnavailable,
    RateLimited,
)
from resilient_llm.messages import ChatRequest, Message
from resilient_llm.providers import create_adapter
from resilient_llm.providers._common import (
    body_error,
    error_from_status,
    require_key,
    says_context_length,
    status_for_error_type,
)
from resilient_llm.providers._redact import redact
from resilient_llm.providers.anthropic.errors import map_anthropic_error
from resilient_llm.providers.base import ENV_KEYS, Provider
from resilient_llm.providers.gemini.errors import map_gemini_error
from resilient_llm.providers.openai.errors import map_openai_error
from resilient_llm.secrets import Secret

from .conftest import KINDS, Route

FRANCE = ChatRequest((Message("user", "What is the capital of France?"),))


def _response(status: int, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(
        status, headers=headers, request=httpx2.Request("POST", "http://127.0.0.1/x")
    )


# --- keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_no_key_and_no_base_url_is_an_auth_error_at_call_time(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ENV_KEYS[kind]:
        monkeypatch.delenv(variable, raising=False)
    adapter = create_adapter(Provider(kind, "m"))  # type: ignore[arg-type]  # builds fine
    calls: list[Callable[[], object]] = [
        lambda: adapter.chat(FRANCE, 1),
        lambda: asyncio.run(adapter.achat(FRANCE, 1)),
        lambda: list(adapter.stream(FRANCE, 1)),
        lambda: asyncio.run(_drain(adapter.astream(FRANCE, 1))),
    ]
    for call in calls:
        with pytest.raises(AuthError) as info:
            call()
        for variable in ENV_KEYS[kind]:
            assert variable in str(info.value)
        assert info.value.provider == kind
    adapter.close()


async def _drain(chunks: object) -> None:
    async for _ in chunks:  # type: ignore[attr-defined]
        pass


def test_the_environment_key_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "from-env")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    assert require_key(Provider("gemini", "m")).reveal() == "from-env"


def test_a_local_server_needs_no_key(route: Route, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ENV_KEYS[route.kind]:
        monkeypatch.delenv(variable, raising=False)
    adapter = route.adapter(api_key=None)
    assert adapter.chat(FRANCE, 5).content == "The capital of France is Paris."


def test_importing_the_package_imports_no_sdk() -> None:
    code = (
        "import sys, resilient_llm, resilient_llm.providers, resilient_llm._engine\n"
        "bad = [m for m in ('openai', 'anthropic', 'google.genai') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_redact_masks_the_key_and_truncates() -> None:
    secret = Secret("sk-canary-123")
    assert redact("bad key sk-canary-123 given", secret) == "bad key *** given"
    assert len(redact("x" * 1000, None)) == 300
    assert redact("a\n  b", None) == "a b"


# --- helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, RateLimited),
        (500, ProviderUnavailable),
        (502, ProviderUnavailable),
        (503, ProviderUnavailable),
        (504, ProviderUnavailable),
        (529, ProviderUnavailable),
        (408, ProviderUnavailable),
        (409, ProviderUnavailable),
        (400, BadRequest),
        (413, BadRequest),
        (422, BadRequest),
        (401, AuthError),
        (403, AuthError),
        (404, AuthError),
    ],
)
def test_error_from_status(status: int, kind: type[Exception]) -> None:
    error = error_from_status("r", status, "msg", headers={"retry-after": "3"})
    assert type(error) is kind
    assert (error.provider, error.status_code) == ("r", status)
    if kind is not BadRequest and kind is not AuthError:
        assert error.retry_after == 3.0


def test_context_length_only_for_client_errors() -> None:
    assert type(error_from_status("r", 400, "m", context_length=True)) is ContextLengthExceeded
    assert type(error_from_status("r", 500, "m", context_length=True)) is ProviderUnavailable


@pytest.mark.parametrize(
    "text",
    [
        "context_length_exceeded",
        "prompt is too long: 250000 tokens > 200000 maximum",
        "The input token count (1200000) exceeds the maximum number of tokens allowed",
        "This model's maximum context length is 128000 tokens.",
    ],
)
def test_says_context_length(text: str) -> None:
    assert says_context_length(None, text)


def test_body_error_shapes() -> None:
    inner = {"message": "m", "type": "t", "code": 7}
    assert body_error({"error": inner}) == ("m", "t", "7")
    assert body_error(inner) == ("m", "t", "7")
    assert body_error([{"error": {"message": "g", "status": "UNAVAILABLE"}}]) == (
        "g",
        "UNAVAILABLE",
        None,
    )
    assert body_error(json.dumps({"error": inner})) == ("m", "t", "7")
    assert body_error("not json") == ("not json", None, None)
    assert body_error(None) == (None, None, None)


def test_status_for_error_type() -> None:
    assert status_for_error_type(None, "overloaded_error") == 529
    assert status_for_error_type("rate_limit_error") == 429
    assert status_for_error_type("RESOURCE_EXHAUSTED") == 429
    assert status_for_error_type("something new") == 500


# --- per-SDK edge cases ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_type", "kind", "status"),
    [
        ("overloaded_error", ProviderUnavailable, 529),
        ("rate_limit_error", RateLimited, 429),
        ("api_error", ProviderUnavailable, 500),
        ("invalid_request_error", BadRequest, 400),
    ],
)
def test_anthropic_in_band_errors_classify_on_type(
    error_type: str, kind: type[Exception], status: int
) -> None:
    body = {"type": "error", "error": {"type": error_type, "message": "boom"}}
    sdk = anthropic.APIStatusError(str(body), response=_response(200), body=body)
    error = map_anthropic_error(sdk, "r")
    assert type(error) is kind
    assert error.status_code == status
    assert "boom" in error.message


def test_openai_in_band_rate_limit() -> None:
    body = {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}
    sdk = openai.APIError("slow down", httpx2.Request("POST", "http://x"), body=body)
    error = map_openai_error(sdk, "r")
    assert type(error) is RateLimited
    assert error.status_code == 429


def test_openai_context_length_by_code() -> None:
    body = {
        "message": "too long",
        "type": "invalid_request_error",
        "code": "context_length_exceeded",
    }
    sdk = openai.BadRequestError("x", response=_response(400), body=body)
    assert type(map_openai_error(sdk, "r")) is ContextLengthExceeded


def test_gemini_retry_info_wins_over_headers() -> None:
    body = {
        "error": {
            "code": 429,
            "message": "quota",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "4s"}],
        }
    }
    sdk = genai_errors.ClientError(429, body, _response(429, {"retry-after": "9"}))
    error = map_gemini_error(sdk, "r")
    assert type(error) is RateLimited
    assert error.retry_after == 4.0


def test_gemini_in_band_error_without_code_uses_its_status() -> None:
    body = {"error": {"message": "busy", "status": "UNAVAILABLE"}}
    sdk = genai_errors.APIError(0, body)
    error = map_gemini_error(sdk, "r")
    assert type(error) is ProviderUnavailable
    assert error.status_code == 503


@pytest.mark.parametrize("mapper", [map_openai_error, map_anthropic_error, map_gemini_error])
def test_bugs_are_not_swallowed(mapper: object) -> None:
    with pytest.raises(KeyError):
        mapper(KeyError("bug"), "r")  # type: ignore[operator]


@pytest.mark.parametrize("mapper", [map_openai_error, map_anthropic_error, map_gemini_error])
@pytest.mark.parametrize(
    "exc",
    [
        json.JSONDecodeError("Expecting value", "{", 1),
        TimeoutError(),
        ConnectionResetError(),
        httpx2.RemoteProtocolError("peer closed"),
    ],
)
def test_escaped_transport_errors_are_unavailable(mapper: object, exc: Exception) -> None:
    error = mapper(exc, "r")  # type: ignore[operator]
    assert type(error) is ProviderUnavailable
    assert error.provider == "r"


def test_aiohttp_errors_are_unavailable() -> None:
    import aiohttp

    error = map_gemini_error(aiohttp.ServerDisconnectedError(), "r")
    assert type(error) is ProviderUnavailable
