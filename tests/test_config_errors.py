"""Every invalid configuration raises a clear error naming the field (issue 7).

One table: what is built, the exception type expected, and the text the message must
contain (the field's qualified name, or the option). ``ConfigurationError`` is also a
``ValueError``, so callers catching either see these. Cases that raise a wrong type or
an unclear message, once fixed, are pinned in ``tests/test_reported_fixes.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from langchain_resilient import ChatResilientLLM
from llamaindex_resilient import ResilientLLM as LlamaResilientLLM
from resilient_llm import (
    BreakerPolicy,
    ConfigurationError,
    Provider,
    RateLimit,
    ResilientLLM,
    RetryPolicy,
)

NAN, INF = math.nan, math.inf


def _provider(**kwargs: Any) -> Provider:
    return Provider("openai", "gpt-4o", **kwargs)


def _engine(*providers: Any, **kwargs: Any) -> ResilientLLM:
    return ResilientLLM(list(providers) or [_provider()], adapter_factory=_no_adapter, **kwargs)


def _no_adapter(provider: Provider) -> Any:
    raise AssertionError("no call may reach an adapter here")


def _call(**options: Any) -> Callable[[], object]:
    return lambda: _engine().chat("hi", **options)


CE = ConfigurationError
CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    # -- RateLimit ------------------------------------------------------------------------
    (
        "rpm negative",
        lambda: RateLimit(requests_per_minute=-1),
        CE,
        "RateLimit.requests_per_minute",
    ),
    ("rpm zero", lambda: RateLimit(requests_per_minute=0), CE, "RateLimit.requests_per_minute"),
    ("rpm bool", lambda: RateLimit(requests_per_minute=True), CE, "RateLimit.requests_per_minute"),
    ("rpm float", lambda: RateLimit(requests_per_minute=10.5), CE, "RateLimit.requests_per_minute"),
    ("rpm str", lambda: RateLimit(requests_per_minute="10"), CE, "RateLimit.requests_per_minute"),
    ("tpm negative", lambda: RateLimit(tokens_per_minute=-5), CE, "RateLimit.tokens_per_minute"),
    ("tpm zero", lambda: RateLimit(tokens_per_minute=0), CE, "RateLimit.tokens_per_minute"),
    ("tpm bool", lambda: RateLimit(tokens_per_minute=False), CE, "RateLimit.tokens_per_minute"),
    ("tpm float", lambda: RateLimit(tokens_per_minute=1e6), CE, "RateLimit.tokens_per_minute"),
    ("window zero", lambda: RateLimit(window=0), CE, "RateLimit.window"),
    ("window nan", lambda: RateLimit(window=NAN), CE, "RateLimit.window"),
    ("window inf", lambda: RateLimit(window=INF), CE, "RateLimit.window"),
    ("window negative", lambda: RateLimit(window=-1), CE, "RateLimit.window"),
    ("window bool", lambda: RateLimit(window=True), CE, "RateLimit.window"),
    ("window str", lambda: RateLimit(window="60"), CE, "RateLimit.window"),
    ("window timedelta 0", lambda: RateLimit(window=timedelta(0)), CE, "RateLimit.window"),
    # -- RetryPolicy ----------------------------------------------------------------------
    ("max_retries -1", lambda: RetryPolicy(max_retries=-1), CE, "RetryPolicy.max_retries"),
    ("max_retries bool", lambda: RetryPolicy(max_retries=True), CE, "RetryPolicy.max_retries"),
    ("max_retries float", lambda: RetryPolicy(max_retries=2.0), CE, "RetryPolicy.max_retries"),
    ("base -1", lambda: RetryPolicy(base=-1), CE, "RetryPolicy.base"),
    ("base nan", lambda: RetryPolicy(base=NAN), CE, "RetryPolicy.base"),
    ("base inf", lambda: RetryPolicy(base=INF), CE, "RetryPolicy.base"),
    ("base huge int", lambda: RetryPolicy(base=10**400), CE, "RetryPolicy.base"),
    ("base timedelta<0", lambda: RetryPolicy(base=timedelta(seconds=-1)), CE, "RetryPolicy.base"),
    ("cap < base", lambda: RetryPolicy(base=5, cap=1), CE, "RetryPolicy.cap"),
    ("cap nan", lambda: RetryPolicy(cap=NAN), CE, "RetryPolicy.cap"),
    ("multiplier < 1", lambda: RetryPolicy(multiplier=0.5), CE, "RetryPolicy.multiplier"),
    ("multiplier nan", lambda: RetryPolicy(multiplier=NAN), CE, "RetryPolicy.multiplier"),
    (
        "multiplier timedelta",
        lambda: RetryPolicy(multiplier=timedelta(1)),
        CE,
        "RetryPolicy.multiplier",
    ),
    ("jitter weird", lambda: RetryPolicy(jitter="weird"), CE, "RetryPolicy.jitter"),
    ("jitter None", lambda: RetryPolicy(jitter=None), CE, "RetryPolicy.jitter"),
    ("jitter list", lambda: RetryPolicy(jitter=["full"]), CE, "RetryPolicy.jitter"),
    # -- BreakerPolicy --------------------------------------------------------------------
    (
        "threshold 0",
        lambda: BreakerPolicy(failure_threshold=0),
        CE,
        "BreakerPolicy.failure_threshold",
    ),
    (
        "threshold bool",
        lambda: BreakerPolicy(failure_threshold=True),
        CE,
        "BreakerPolicy.failure_threshold",
    ),
    ("failure_rate 0", lambda: BreakerPolicy(failure_rate=0), CE, "BreakerPolicy.failure_rate"),
    ("failure_rate 1.5", lambda: BreakerPolicy(failure_rate=1.5), CE, "BreakerPolicy.failure_rate"),
    ("failure_rate nan", lambda: BreakerPolicy(failure_rate=NAN), CE, "BreakerPolicy.failure_rate"),
    (
        "failure_rate bool",
        lambda: BreakerPolicy(failure_rate=True),
        CE,
        "BreakerPolicy.failure_rate",
    ),
    ("breaker window 0", lambda: BreakerPolicy(window=0), CE, "BreakerPolicy.window"),
    ("breaker window inf", lambda: BreakerPolicy(window=INF), CE, "BreakerPolicy.window"),
    (
        "breaker window timedelta<0",
        lambda: BreakerPolicy(window=timedelta(seconds=-1)),
        CE,
        "BreakerPolicy.window",
    ),
    ("cooldown -1", lambda: BreakerPolicy(cooldown=-1), CE, "BreakerPolicy.cooldown"),
    ("cooldown nan", lambda: BreakerPolicy(cooldown=NAN), CE, "BreakerPolicy.cooldown"),
    ("probes 0", lambda: BreakerPolicy(half_open_probes=0), CE, "BreakerPolicy.half_open_probes"),
    (
        "probes float",
        lambda: BreakerPolicy(half_open_probes=1.0),
        CE,
        "BreakerPolicy.half_open_probes",
    ),
    # -- Provider -------------------------------------------------------------------------
    ("kind unknown", lambda: Provider("openrouter", "m"), CE, "Provider.kind"),
    ("kind None", lambda: Provider(None, "m"), CE, "Provider.kind"),  # type: ignore[arg-type]
    ("kind list", lambda: Provider(["openai"], "m"), CE, "Provider.kind"),  # type: ignore[arg-type]
    ("model empty", lambda: Provider("openai", ""), CE, "Provider.model"),
    ("model blank", lambda: Provider("openai", "   "), CE, "Provider.model"),
    ("model int", lambda: Provider("openai", 4), CE, "Provider.model"),  # type: ignore[arg-type]
    ("base_url no scheme", lambda: _provider(base_url="localhost:8000"), CE, "Provider.base_url"),
    ("base_url ftp", lambda: _provider(base_url="ftp://x"), CE, "Provider.base_url"),
    ("base_url empty", lambda: _provider(base_url=""), CE, "Provider.base_url"),
    ("base_url no host", lambda: _provider(base_url="http://"), CE, "Provider.base_url"),
    ("base_url bytes", lambda: _provider(base_url=b"http://x"), CE, "Provider.base_url"),
    ("provider timeout 0", lambda: _provider(timeout=0), CE, "Provider.timeout"),
    ("provider timeout negative", lambda: _provider(timeout=-1), CE, "Provider.timeout"),
    ("provider timeout nan", lambda: _provider(timeout=NAN), CE, "Provider.timeout"),
    ("provider timeout inf", lambda: _provider(timeout=INF), CE, "Provider.timeout"),
    ("provider timeout bool", lambda: _provider(timeout=True), CE, "Provider.timeout"),
    ("provider timeout str", lambda: _provider(timeout="5"), CE, "Provider.timeout"),
    (
        "rate_limit dict",
        lambda: _provider(rate_limit={"requests_per_minute": 5}),
        CE,
        "Provider.rate_limit",
    ),
    ("rate_limit int", lambda: _provider(rate_limit=60), CE, "Provider.rate_limit"),
    ("name empty", lambda: _provider(name=""), CE, "Provider.name"),
    ("name blank", lambda: _provider(name="  "), CE, "Provider.name"),
    ("name int", lambda: _provider(name=3), CE, "Provider.name"),
    # -- ResilientLLM ---------------------------------------------------------------------
    ("providers empty", lambda: ResilientLLM([]), CE, "ResilientLLM.providers"),
    (
        "providers str",
        lambda: ResilientLLM("openai"),
        CE,
        "ResilientLLM.providers[0]: cannot tell the provider of model string 'openai'",
    ),
    (
        "providers bytes",
        lambda: ResilientLLM(b"openai"),
        CE,
        "ResilientLLM.providers must be a list",
    ),  # type: ignore[arg-type]
    (
        "providers non-Provider",
        lambda: ResilientLLM([_provider(), {"kind": "openai"}]),
        CE,
        "ResilientLLM.providers[1]",
    ),  # type: ignore[list-item]
    (
        "providers duplicate",
        lambda: ResilientLLM([_provider(), _provider()]),
        CE,
        "ResilientLLM.providers[0] Provider('openai', model='gpt-4o') and "
        "ResilientLLM.providers[1] Provider('openai', model='gpt-4o') would both be named "
        "'openai:gpt-4o'",
    ),
    (
        "providers duplicate names",
        lambda: ResilientLLM([_provider(name="a"), Provider("anthropic", "c", name="a")]),
        CE,
        "ResilientLLM.providers[0] Provider('openai', model='gpt-4o', name='a') and "
        "ResilientLLM.providers[1] Provider('anthropic', model='c', name='a') are both named 'a'",
    ),
    ("engine timeout 0", lambda: _engine(timeout=0), CE, "ResilientLLM.timeout"),
    ("engine timeout -1", lambda: _engine(timeout=-1), CE, "ResilientLLM.timeout"),
    ("engine timeout nan", lambda: _engine(timeout=NAN), CE, "ResilientLLM.timeout"),
    ("engine timeout True", lambda: _engine(timeout=True), CE, "ResilientLLM.timeout"),
    ("engine timeout str", lambda: _engine(timeout="60"), CE, "ResilientLLM.timeout"),
    ("spill_over -1", lambda: _engine(spill_over=-1), CE, "ResilientLLM.spill_over"),
    ("spill_over bool", lambda: _engine(spill_over=True), CE, "ResilientLLM.spill_over"),
    ("spill_over str", lambda: _engine(spill_over="1"), CE, "ResilientLLM.spill_over"),
    ("retry dict", lambda: _engine(retry={"max_retries": 1}), CE, "ResilientLLM.retry"),
    ("retry int", lambda: _engine(retry=3), CE, "ResilientLLM.retry"),
    ("breaker dict", lambda: _engine(breaker={"failure_threshold": 1}), CE, "ResilientLLM.breaker"),
    ("breaker RetryPolicy", lambda: _engine(breaker=RetryPolicy()), CE, "ResilientLLM.breaker"),
    # -- per call -------------------------------------------------------------------------
    ("call timeout 0", _call(timeout=0), CE, "timeout"),
    ("call timeout -1", _call(timeout=-1), CE, "timeout"),
    ("call timeout nan", _call(timeout=NAN), CE, "timeout"),
    ("call timeout bool", _call(timeout=True), CE, "timeout"),
    ("call unknown option", _call(temprature=0.5), TypeError, "temprature"),
    ("call max_tokens 0", _call(max_tokens=0), CE, "max_tokens"),
    ("call temperature 3", _call(temperature=3), CE, "temperature"),
    ("call temperature nan", _call(temperature=NAN), CE, "temperature"),
    ("call tool_choice unknown", _call(tool_choice="lookup"), CE, "tool_choice"),
    ("call tools non-dict", _call(tools=[5]), CE, "tools"),
    ("call tool without name", _call(tools=[{"description": "x"}]), CE, "'name'"),
    # -- ChatResilientLLM (LangChain) -----------------------------------------------------
    (
        "lc engine and providers",
        lambda: ChatResilientLLM(engine=_engine(), providers=[_provider()]),
        ValueError,
        "engine=",
    ),
    (
        "lc engine and retry",
        lambda: ChatResilientLLM(engine=_engine(), retry=RetryPolicy()),
        ValueError,
        "engine=",
    ),
    ("lc neither", lambda: ChatResilientLLM(), ValueError, "providers"),
    (
        "lc unknown field",
        lambda: ChatResilientLLM(providers=[_provider()], temprature=0.5),
        ValueError,
        "temprature",
    ),
    (
        "lc rate_limiter",
        lambda: ChatResilientLLM(providers=[_provider()], rate_limiter=object()),
        ValueError,
        "does not take a LangChain rate_limiter",
    ),
    (
        "lc response_cache wrong",
        lambda: ChatResilientLLM(providers=[_provider()], response_cache={}),
        ValueError,
        "ChatResilientLLM.response_cache must be a ResponseCache",
    ),
    (
        "lc engine and timeout",
        lambda: ChatResilientLLM(engine=_engine(), timeout=5),
        ValueError,
        "engine=",
    ),
    ("lc providers wrong", lambda: ChatResilientLLM(providers=["openai"]), ValueError, "providers"),
    (
        "lc max_retries contradicts retry",
        lambda: ChatResilientLLM(
            providers=[_provider()], max_retries=1, retry=RetryPolicy(max_retries=2)
        ),
        ValueError,
        "max_retries",
    ),
    (
        "lc timeout 0",
        lambda: ChatResilientLLM(providers=[_provider()], timeout=0),
        ValueError,  # pydantic wraps the ConfigurationError in a ValidationError
        "ResilientLLM.timeout",
    ),
    (
        "lc max_retries -1",
        lambda: ChatResilientLLM(providers=[_provider()], max_retries=-1),
        ValueError,
        "RetryPolicy.max_retries",
    ),
    # -- ResilientLLM (LlamaIndex) --------------------------------------------------------
    (
        "li engine and providers",
        lambda: LlamaResilientLLM(providers=[_provider()], engine=_engine()),
        CE,
        "engine=",
    ),
    (
        "li engine and timeout",
        lambda: LlamaResilientLLM(engine=_engine(), timeout=5),
        CE,
        "engine=",
    ),
    ("li neither", lambda: LlamaResilientLLM(), CE, "providers"),
    (
        "li rate_limiter",
        lambda: LlamaResilientLLM(providers=[_provider()], rate_limiter=object()),
        ValueError,
        "rate_limiter",
    ),
    (
        "li unknown option",
        lambda: LlamaResilientLLM(providers=[_provider()], temprature=0.5),
        CE,
        "ResilientLLM got an unknown option 'temprature'; did you mean 'temperature'?",
    ),
    (
        "li timeout 0",
        lambda: LlamaResilientLLM(providers=[_provider()], timeout=0),
        CE,
        "ResilientLLM.timeout",
    ),
    (
        "li duplicate",
        lambda: LlamaResilientLLM(providers=[_provider(), _provider()]),
        CE,
        "would both be named 'openai:gpt-4o'",
    ),
]


@pytest.mark.parametrize(
    ("build", "error", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_invalid_configuration_names_the_field(
    build: Callable[[], object], error: type[Exception], names: str
) -> None:
    with pytest.raises(error) as caught:
        build()
    assert names in str(caught.value)
    if error is CE:
        assert isinstance(caught.value, ValueError)


def test_every_case_has_a_unique_id() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_rate_limiter_set_later_is_refused() -> None:
    llm = LlamaResilientLLM(providers=[_provider()])
    with pytest.raises(ValueError, match="rate_limiter"):
        llm.rate_limiter = object()  # type: ignore[assignment]
    assert llm.rate_limiter is None


def test_chat_model_refuses_unknown_call_options() -> None:
    from langchain_core.messages import HumanMessage

    model = ChatResilientLLM(engine=_engine())
    with pytest.raises(TypeError, match="temprature"):
        model.invoke([HumanMessage("hi")], temprature=0.5)
