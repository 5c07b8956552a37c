"""The providers' error replies: a bad key fails over, rate limits and overload are retried.

A bad key is a misconfigured route whatever status carries it: OpenAI's 401
``invalid_api_key``, Anthropic's 401 ``authentication_error`` and 403
``permission_error``, Gemini's 403 ``PERMISSION_DENIED`` and its 400 ``INVALID_ARGUMENT``
whose ``ErrorInfo`` reason is ``API_KEY_INVALID``. The route is disabled (it shows so in the
snapshot and is not called again) and the call fails over.
"""

from __future__ import annotations

import pytest

from resilient_llm import AuthError, BadRequest, RateLimited, ResilientLLMError
from resilient_llm.providers._common import says_auth_failure
from resilient_llm.providers.anthropic.errors import map_anthropic_error
from resilient_llm.providers.gemini.errors import map_gemini_error
from resilient_llm.providers.openai.errors import map_openai_error

from .conftest import FALLBACK, MODES, Bench, answer
from .server import Recording

BAD_KEYS = {
    "openai-401": ("openai", "openai/401_invalid_api_key"),
    "anthropic-401": ("anthropic", "anthropic/401_authentication_error"),
    "anthropic-403": ("anthropic", "anthropic/403_permission_error"),
    "gemini-400-API_KEY_INVALID": ("gemini", "gemini/400_api_key_invalid"),
    "gemini-403": ("gemini", "gemini/403_permission_denied"),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_a_bad_key_disables_the_route_and_fails_over(bench: Bench, case: str, mode: str) -> None:
    kind, recording = BAD_KEYS[case]
    bad = bench.route(kind, "badkey")
    good = bench.route(FALLBACK[kind], "healthy")
    bench.serve(bad, recording)
    bench.serve(good, answer(good.kind, mode), answer(good.kind, mode))
    llm = bench.engine(bad, good)

    first = bench.run(llm, mode)
    assert first.provider == good.name
    assert first.text
    (failover,) = first.metadata["failovers"]
    assert (failover["from"], failover["to"]) == (bad.name, good.name)
    assert llm.snapshot()[bad.name].disabled
    assert not llm.snapshot()[good.name].disabled
    # The disabled route is not asked again: the next call goes straight to the good one.
    second = bench.run(llm, mode)
    assert second.provider == good.name
    assert len(bench.requests(bad)) == 1
    assert len(bench.requests(good)) == 2


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_a_bad_key_on_the_only_route_raises_auth_error(bench: Bench, case: str) -> None:
    kind, recording = BAD_KEYS[case]
    bad = bench.route(kind, "badkey")
    bench.serve(bad, recording)
    with pytest.raises(ResilientLLMError) as caught:
        bench.run(bench.engine(bad), "chat")
    error = caught.value
    # With one route the call reports every route failed; the route's own error is an
    # AuthError, chained, with the provider's status.
    cause = error if isinstance(error, AuthError) else error.__cause__
    assert isinstance(cause, AuthError), repr(error)
    assert cause.status_code == Recording.load(recording).status
    assert "test-key" not in str(error)


def test_only_a_key_reason_makes_a_400_an_auth_error() -> None:
    """The reason decides, not the status: another Gemini 400 is still a bad request."""
    invalid_key = Recording.load("gemini/400_api_key_invalid").body.decode()
    assert says_auth_failure(invalid_key)
    other = invalid_key.replace("API_KEY_INVALID", "FIELD_INVALID").replace(
        "API key not valid. Please pass a valid API key.", "Invalid JSON payload received."
    )
    assert not says_auth_failure(other)
    for name in (
        "openai/401_invalid_api_key",
        "anthropic/401_authentication_error",
        "anthropic/403_permission_error",
        "gemini/403_permission_denied",
    ):
        assert says_auth_failure(Recording.load(name).body.decode()), name
    for name in (
        "openai/429_rate_limit",
        "anthropic/529_overloaded",
        "gemini/429_resource_exhausted",
    ):
        assert not says_auth_failure(Recording.load(name).body.decode()), name


def test_another_gemini_400_is_raised_at_once(bench: Bench) -> None:
    body = Recording.load("gemini/400_api_key_invalid")
    text = body.body.decode().replace("API_KEY_INVALID", "FIELD_INVALID")
    bad = bench.route("gemini", "badrequest")
    good = bench.route("openai", "healthy")
    bench.serve(bad, body.with_body(text))
    llm = bench.engine(bad, good)
    with pytest.raises(BadRequest):
        bench.run(llm, "chat")
    assert not llm.snapshot()[bad.name].disabled
    assert bench.requests(good) == []


RATE_LIMITS = {
    "openai": ("openai/429_rate_limit", 2.0),
    "anthropic": ("anthropic/429_rate_limit", 3.0),
    "gemini": ("gemini/429_resource_exhausted", 7.0),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", sorted(RATE_LIMITS))
def test_a_recorded_429_pauses_the_route_and_fails_over(bench: Bench, kind: str, mode: str) -> None:
    recording, retry_after = RATE_LIMITS[kind]
    limited = bench.route(kind, "limited")
    good = bench.route(FALLBACK[kind], "healthy")
    bench.serve(limited, recording)
    bench.serve(good, answer(good.kind, mode))
    llm = bench.engine(limited, good)

    result = bench.run(llm, mode)
    assert result.provider == good.name
    pauses = [e for e in bench.events if type(e).__name__ == "RoutePaused"]
    assert [(e.route, e.seconds) for e in pauses] == [(limited.name, retry_after)]


@pytest.mark.parametrize("kind", sorted(RATE_LIMITS))
def test_a_recorded_429_maps_to_rate_limited_with_its_wait(kind: str) -> None:
    import anthropic
    import httpx2
    import openai
    from google.genai import errors as genai_errors

    recording = Recording.load(RATE_LIMITS[kind][0])
    response = httpx2.Response(
        recording.status,
        headers=list(recording.headers),
        content=recording.body,
        request=httpx2.Request("POST", "http://127.0.0.1/"),
    )
    body = response.json()
    if kind == "openai":
        error = map_openai_error(openai.RateLimitError("429", response=response, body=body), "r")
    elif kind == "anthropic":
        error = map_anthropic_error(
            anthropic.RateLimitError("429", response=response, body=body), "r"
        )
    else:
        error = map_gemini_error(genai_errors.ClientError(429, body, response), "r")
    assert isinstance(error, RateLimited)
    assert error.retry_after == RATE_LIMITS[kind][1]


@pytest.mark.parametrize("mode", MODES)
def test_anthropic_529_overloaded_is_retried_then_fails_over(bench: Bench, mode: str) -> None:
    busy = bench.route("anthropic", "overloaded")
    good = bench.route("gemini", "healthy")
    # One attempt and one retry (RETRY.max_retries == 1), both overloaded.
    bench.serve(busy, "anthropic/529_overloaded", "anthropic/529_overloaded")
    bench.serve(good, answer("gemini", mode))
    llm = bench.engine(busy, good)

    result = bench.run(llm, mode)
    assert result.provider == good.name
    outcomes = [(a["route"], a["outcome"], a["status_code"]) for a in result.metadata["attempts"]]
    assert outcomes[:2] == [
        (busy.name, "ProviderUnavailable", 529),
        (busy.name, "ProviderUnavailable", 529),
    ]
    assert not llm.snapshot()[busy.name].disabled
