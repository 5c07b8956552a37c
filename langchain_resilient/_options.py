"""``ChatResilientLLM``'s engine fields, checked against the engine's options, and its engine.

Each engine option (``resilient_llm.options.OPTION_DEFAULTS``) is a field of the same
name and the same default (taken from there); ``tests/test_plugin_options.py`` fails when
the two lists differ. The fields are typed for type checkers and IDEs but not validated
by pydantic (``SkipValidation``): the engine's validators check the values, with the same
message as ``ResilientLLM(...)`` gives, naming ``ChatResilientLLM.<option>``. Two differ
by design: ``cache`` is LangChain's own field, so the engine's is ``response_cache``; and
``providers`` may be left out when an ``engine=`` is shared.

An unknown keyword raises, naming close matches, as LlamaIndex's ``ResilientLLM`` does;
LangChain's ``rate_limiter`` is refused, as LlamaIndex's is (see
:func:`resilient_llm.options.refuse_rate_limiter` for why).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field, SkipValidation, field_validator, model_validator

from resilient_llm import (
    BreakerPolicy,
    Clock,
    ConfigurationError,
    Hedge,
    Provider,
    ResilientLLM,
    RetryBudget,
    RetryPolicy,
    StreamRecovery,
    StreamTimeouts,
)
from resilient_llm.events import EventHandler
from resilient_llm.extras.cache import CacheStore
from resilient_llm.options import (
    OPTION_DEFAULTS,
    REQUIRED,
    AdapterFactory,
    EngineOptions,
    check_known,
    refuse_rate_limiter,
)
from resilient_llm.state import StateBackend

from . import _callbacks, _serde
from ._runs import NamedRunModel

__all__ = ["FIELD_OF_OPTION", "EngineFields", "build_engine"]

FIELD_OF_OPTION = {name: "response_cache" if name == "cache" else name for name in OPTION_DEFAULTS}
"""Each engine option's field name here."""
_OPTION_OF_FIELD = {field: option for option, field in FIELD_OF_OPTION.items()}


def _option(name: str) -> Any:
    default = OPTION_DEFAULTS[name]
    return Field(default=None if default is REQUIRED else default, exclude=True)


class EngineFields(NamedRunModel):
    """The engine's options as fields; unknown keywords and a ``rate_limiter`` refused."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    providers: SkipValidation[Sequence[Provider | str] | None] = _option("providers")
    """The routes, in order of preference (left out when ``engine`` is given)."""
    models: SkipValidation[Sequence[str]] = _option("models")
    """The routes as model strings (``"openai:gpt-4o-mini"``), instead of ``providers``."""
    retry: SkipValidation[RetryPolicy | None] = _option("retry")
    breaker: SkipValidation[BreakerPolicy | None] = _option("breaker")
    timeout: SkipValidation[float] = _option("timeout")
    """The deadline of one call, in seconds: waits, attempts and backoff together."""
    spill_over: SkipValidation[float] = _option("spill_over")
    retry_budget: SkipValidation[RetryBudget | None] = _option("retry_budget")
    """Each route's retries as a share of its recent requests (``None``: off)."""
    stream_timeouts: SkipValidation[StreamTimeouts | None] = _option("stream_timeouts")
    adaptive_limits: SkipValidation[bool] = _option("adaptive_limits")
    hedge: SkipValidation[Hedge | bool | None] = _option("hedge")
    """Start the next route beside an attempt that shows no sign of life (on by default;
    ``None`` or ``False``: off)."""
    attempt_timeout: SkipValidation[float | None] = _option("attempt_timeout")
    """A limit on each attempt, in seconds, within the call's ``timeout`` (None: none)."""
    on_event: SkipValidation[EventHandler | Iterable[EventHandler]] = _option("on_event")
    """Engine event handlers, besides the LangChain callbacks every event reaches."""
    clock: SkipValidation[Clock | None] = _option("clock")
    jitter_seed: SkipValidation[int | None] = _option("jitter_seed")
    """Seeds the backoff jitter, for reproducible waits (``seed`` is the model's)."""
    adapter_factory: SkipValidation[AdapterFactory | None] = _option("adapter_factory")
    state: SkipValidation[StateBackend | None] = _option("state")
    """Where routes keep limiter and breaker state: memory (default) or ``RedisState``."""
    response_cache: SkipValidation[CacheStore | None] = _option("cache")
    """The engine's response cache: a ``ResponseCache``, a ``RedisCache`` or another
    cache store. (``cache=`` keeps LangChain's meaning: a ``BaseCache`` or a bool.)"""
    telemetry: SkipValidation[Any] = _option("telemetry")
    """A ``resilient_llm.extras.telemetry.Telemetry`` for OpenTelemetry spans and metrics."""
    on_refusal: SkipValidation[Literal["return", "failover"]] = _option("on_refusal")
    """A refusal is returned (in ``additional_kwargs["refusal"]``), or asks the next route."""
    stream_recovery: SkipValidation[StreamRecovery | str | None] = _option("stream_recovery")
    """``"continue"``: a stream that breaks after text reached the caller goes on, on the
    next route, from where the text stops (off by default; also per call)."""

    @model_validator(mode="before")
    @classmethod
    def _known_options(cls, data: Any) -> Any:
        if isinstance(data, dict):
            # The serialized form (dumpd, pickle): routes and policies as dicts.
            data = _serde.revive(data)
            known = set(cls.model_fields)
            known |= {f.alias for f in cls.model_fields.values() if f.alias}
            check_known(cls.__name__, data, sorted(known))
        return data

    @field_validator("rate_limiter", mode="before")
    @classmethod
    def _no_rate_limiter(cls, value: object) -> None:
        refuse_rate_limiter(cls.__name__, "LangChain", value)
        return None

    def __setattr__(self, name: str, value: Any) -> None:
        # Assignment is not validated; a limiter set later is refused too.
        if name == "rate_limiter":
            refuse_rate_limiter(type(self).__name__, "LangChain", value)
        super().__setattr__(name, value)


def build_engine(model: Any, engine: ResilientLLM | None, max_retries: int | None) -> ResilientLLM:
    """The engine of ``model``: ``engine`` as given, else one built from the fields set."""
    owner = type(model).__name__
    given = {
        _OPTION_OF_FIELD[f]: getattr(model, f)
        for f in model.model_fields_set
        if f in _OPTION_OF_FIELD
    }
    if engine is not None:
        # The fields set, not their values: max_retries=0 or seed=0 given with an engine
        # would otherwise be silently ignored.
        clash = sorted(FIELD_OF_OPTION[o] for o in given)
        clash += ["max_retries"] if max_retries is not None else []
        if clash:
            raise ValueError(
                f"{owner}: pass either engine= or {clash}, not both "
                "(the engine's own settings apply)"
            )
        _callbacks.attach(engine)
        return engine
    if not given.get("providers") and not given.get("models"):
        raise ValueError(f"{owner} needs providers=[Provider(...)], models=[...] or engine=")
    given["retry"] = _retry_policy(owner, given.get("retry"), max_retries)
    try:
        options = EngineOptions.from_kwargs(given, owner=owner)
    except ConfigurationError as error:
        # Named as the caller named it: here the engine's ``cache`` is ``response_cache``.
        wrong = f"{owner}.cache "
        if str(error).startswith(wrong):
            message = f"{owner}.response_cache {str(error).removeprefix(wrong)}"
            raise ConfigurationError(message) from None
        raise
    # Engine events reach the LangChain run in progress, besides any handler given.
    options = dataclasses.replace(options, on_event=(*options.handlers, _callbacks.forward))
    return ResilientLLM.from_options(options)


def _retry_policy(owner: str, retry: Any, max_retries: int | None) -> Any:
    if max_retries is None:
        return retry
    if retry is None:
        return RetryPolicy(max_retries=max_retries)
    if isinstance(retry, RetryPolicy) and retry.max_retries != max_retries:
        raise ValueError(
            f"{owner}: max_retries={max_retries} contradicts "
            f"retry=RetryPolicy(max_retries={retry.max_retries})"
        )
    return retry
