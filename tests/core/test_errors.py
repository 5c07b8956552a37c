from __future__ import annotations

import pickle

import pytest

from resilient_llm import errors
from resilient_llm.errors import (
    AllProvidersFailed,
    AttemptRecord,
    AuthError,
    BadRequest,
    ConfigurationError,
    ContextLengthExceeded,
    DeadlineExceeded,
    ProviderUnavailable,
    RateLimited,
    ResilientLLMError,
    StreamInterrupted,
)
from resilient_llm.messages import Usage


def test_every_error_name_in_the_docstring_tree_exists_and_subclasses_the_base() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        if name == "AttemptRecord":
            continue
        cls = getattr(errors, name)
        assert issubclass(cls, ResilientLLMError)
        assert name in doc, f"{name} missing from the tree in the module docstring"


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [
        (RateLimited, True),
        (ProviderUnavailable, True),
        (BadRequest, False),
        (ContextLengthExceeded, False),
        (AuthError, False),
    ],
)
def test_retryable_defaults_and_fields(cls: type[ResilientLLMError], retryable: bool) -> None:
    error = cls("boom", provider="openai", status_code=429, retry_after=1.5)
    assert error.retryable is retryable
    assert (error.provider, error.status_code, error.retry_after) == ("openai", 429, 1.5)
    assert cls("x", retryable=not retryable).retryable is (not retryable)


def test_errors_pickle_round_trip_with_their_fields() -> None:
    originals: list[ResilientLLMError] = [
        RateLimited("slow", provider="a", status_code=429, retry_after=3.0),
        StreamInterrupted("cut", partial_text="Par", usage=Usage(1, 2), provider="b"),
        AllProvidersFailed("all", attempts=[AttemptRecord("a", "RateLimited", 0.0)]),
        DeadlineExceeded("late", attempts=[AttemptRecord("b", "ok", 1.0, 2.0)]),
        ConfigurationError("RateLimit.window must be > 0"),
    ]
    for error in originals:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert repr(copy) == repr(error)
        assert copy.message == error.message


SECRET = "sk-canary-123"


def _failing_sdk_call() -> None:
    try:
        raise RuntimeError(f"request had Authorization: Bearer {SECRET}")
    except RuntimeError as sdk_error:
        raise ProviderUnavailable("upstream 503", status_code=503) from sdk_error


def test_the_sdk_exception_stays_as_cause_but_not_in_pickles_or_reprs() -> None:
    with pytest.raises(ProviderUnavailable) as info:
        _failing_sdk_call()
    error = info.value
    assert isinstance(error.__cause__, RuntimeError)
    assert SECRET not in repr(error)
    assert SECRET not in str(error)
    assert SECRET.encode() not in pickle.dumps(error)


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="window"):
        raise ConfigurationError("RateLimit.window must be > 0")
