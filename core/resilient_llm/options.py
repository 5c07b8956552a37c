"""The engine's options: one frozen, validated value for ``ResilientLLM`` and both plugins.

``ResilientLLM(...)`` keeps its keyword signature and builds an :class:`EngineOptions`;
LangChain's ``ChatResilientLLM`` derives its fields from :data:`OPTION_DEFAULTS` and
LlamaIndex's ``ResilientLLM`` its keywords, and both build their engine from an
``EngineOptions`` made by :meth:`EngineOptions.from_kwargs`. So every option is checked
once, here, with the same message wherever it was given: each message names the option as
``<owner>.<option>``, the owner being the class the caller built.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import InitVar, dataclass
from typing import Any, Final, cast

from ._arguments import as_list, number_setting, timeout_setting
from .clock import Clock
from .errors import ConfigurationError
from .events import EventHandler
from .extras.cache import CacheStore
from .policies.backoff import RetryPolicy
from .policies.breaker import BreakerPolicy
from .policies.budget import RetryBudget
from .policies.hedging import DEFAULT_HEDGE, Hedge
from .providers.base import ChatAdapter, Provider, distinct_names
from .run.continuation import StreamRecovery, recovery_setting
from .run.refusals import ON_REFUSAL, OnRefusal
from .run.stall import StreamTimeouts
from .state import StateBackend

__all__ = [
    "DEFAULT_OWNER",
    "DEFAULT_RETRY_BUDGET",
    "OPTION_DEFAULTS",
    "REQUIRED",
    "AdapterFactory",
    "EngineOptions",
    "check_known",
    "refuse_rate_limiter",
]

AdapterFactory = Callable[[Provider], ChatAdapter]
DEFAULT_OWNER: Final = "ResilientLLM"
DEFAULT_RETRY_BUDGET = RetryBudget()


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """Every option of an engine, checked: an invalid one raises ``ConfigurationError``.

    Held normalised: ``providers`` a tuple of distinctly named routes, ``on_event`` a
    tuple of handlers, ``timeout`` and ``spill_over`` floats, ``hedge`` a ``Hedge`` or
    None (off; ``False`` is taken for None, ``True`` for the default ``Hedge()``),
    ``stream_recovery`` a ``StreamRecovery`` or None (off; ``"continue"`` is taken for
    the default ``StreamRecovery()``, ``"off"`` for None).

    ``None`` keeps the engine's default where one is built per engine (a ``MemoryState``,
    a ``SystemClock``, a ``RetryPolicy()``). ``owner`` is the class named in error
    messages (``ChatResilientLLM.timeout must be ...``); it is not an option.
    """

    providers: Sequence[Provider | str] | Provider | str = ()
    models: Sequence[str] = ()
    retry: RetryPolicy | None = None
    breaker: BreakerPolicy | None = None
    timeout: float = 60.0
    spill_over: float = 1.0
    retry_budget: RetryBudget | None = DEFAULT_RETRY_BUDGET
    stream_timeouts: StreamTimeouts | None = None
    adaptive_limits: bool = True
    hedge: Hedge | bool | None = DEFAULT_HEDGE
    attempt_timeout: float | None = None
    on_event: EventHandler | Iterable[EventHandler] = ()
    clock: Clock | None = None
    jitter_seed: int | None = None
    adapter_factory: AdapterFactory | None = None
    state: StateBackend | None = None
    cache: CacheStore | None = None
    # Typed loosely so this module does not import the telemetry extra (it needs
    # opentelemetry); the check below accepts only its ``Telemetry``.
    telemetry: object | None = None
    on_refusal: OnRefusal = "return"
    stream_recovery: StreamRecovery | str | None = None
    owner: InitVar[str] = DEFAULT_OWNER

    def __post_init__(self, owner: str) -> None:
        # Normalised in place: a caller may pass one Provider, a list, one handler or a
        # list of them, and an int timeout; the value held is always the one form.
        set_ = object.__setattr__
        set_(self, "providers", _providers(owner, _routes(owner, self.providers, self.models)))
        set_(self, "models", ())
        _check_type(owner, "retry", self.retry, RetryPolicy, "a RetryPolicy")
        _check_type(owner, "breaker", self.breaker, BreakerPolicy, "a BreakerPolicy")
        set_(self, "timeout", timeout_setting(f"{owner}.timeout", self.timeout))
        spill = number_setting(f"{owner}.spill_over", self.spill_over, minimum=0, inclusive=True)
        set_(self, "spill_over", spill)
        _check_type(owner, "retry_budget", self.retry_budget, RetryBudget, "a RetryBudget or None")
        _check_type(
            owner,
            "stream_timeouts",
            self.stream_timeouts,
            StreamTimeouts,
            "a StreamTimeouts or None",
        )
        if not isinstance(self.adaptive_limits, bool):
            raise ConfigurationError(
                f"{owner}.adaptive_limits must be True or False, got {self.adaptive_limits!r}"
            )
        hedge = self.hedge
        if hedge is True:
            hedge = DEFAULT_HEDGE
        elif hedge is False:
            hedge = None
        if hedge is not None and not isinstance(hedge, Hedge):
            raise ConfigurationError(
                f"{owner}.hedge must be a Hedge, True or False/None (off), got {hedge!r}"
            )
        set_(self, "hedge", hedge)
        if self.attempt_timeout is not None:
            set_(
                self,
                "attempt_timeout",
                timeout_setting(f"{owner}.attempt_timeout", self.attempt_timeout),
            )
        set_(self, "on_event", _handlers(owner, self.on_event))
        if self.clock is not None and not isinstance(self.clock, Clock):
            raise ConfigurationError(f"{owner}.clock must be a Clock, got {self.clock!r}")
        seed = self.jitter_seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ConfigurationError(f"{owner}.jitter_seed must be an int or None, got {seed!r}")
        if self.adapter_factory is not None and not callable(self.adapter_factory):
            raise ConfigurationError(f"{owner}.adapter_factory must be callable")
        if self.state is not None and not isinstance(self.state, StateBackend):
            raise ConfigurationError(
                f"{owner}.state must be a state backend (MemoryState, RedisState), "
                f"got {self.state!r}"
            )
        if self.cache is not None and not isinstance(self.cache, CacheStore):
            raise ConfigurationError(
                f"{owner}.cache must be a ResponseCache, a RedisCache or another "
                f"CacheStore, got {self.cache!r}"
            )
        _check_telemetry(owner, self.telemetry)
        if self.on_refusal not in ON_REFUSAL:
            raise ConfigurationError(
                f"{owner}.on_refusal must be 'return' or 'failover', got {self.on_refusal!r}"
            )
        set_(
            self,
            "stream_recovery",
            recovery_setting(f"{owner}.stream_recovery", self.stream_recovery),
        )

    @classmethod
    def from_kwargs(
        cls, options: Mapping[str, Any], *, owner: str = DEFAULT_OWNER
    ) -> EngineOptions:
        """The options named in ``options``; an unknown name raises, naming close matches."""
        check_known(owner, options, OPTION_DEFAULTS)
        return cls(owner=owner, **options)

    @property
    def handlers(self) -> tuple[EventHandler, ...]:
        """``on_event`` as the tuple of handlers it was normalised to."""
        return cast("tuple[EventHandler, ...]", self.on_event)


REQUIRED: Final = dataclasses.MISSING
"""The default of an option that has none (none has, since ``models=`` can stand for
``providers=``; kept for the plugins that derive fields from the options)."""

OPTION_DEFAULTS: Mapping[str, object] = {
    f.name: f.default for f in dataclasses.fields(EngineOptions)
}
"""Every option's name and default, in the constructor's order: what a plugin derives its
fields or keywords from, so a new option reaches it without an edit."""


def check_known(owner: str, given: Iterable[str], known: Iterable[str]) -> None:
    """Raise ``ConfigurationError`` naming the first of ``given`` not in ``known``."""
    names = list(known)
    for name in given:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigurationError(f"{owner} got an unknown option {name!r}{hint}")


def refuse_rate_limiter(owner: str, framework: str, value: object) -> None:
    """A framework's own rate limiter is refused: the engine limits each route itself.

    A limiter in front of the engine would wait outside the call's one deadline, count
    calls rather than the attempts and tokens each route takes, and not know which route
    a call goes to; the engine's events and snapshots would not show its waits.
    """
    if value is not None:
        raise ConfigurationError(
            f"{owner} does not take a {framework} rate_limiter: the engine limits each "
            "route itself, with its requests and tokens per minute: "
            "Provider(..., rate_limit=RateLimit(requests_per_minute=..., tokens_per_minute=...))"
        )


def _routes(owner: str, providers: object, models: object) -> object:
    """``providers``, or ``models`` (model strings) in their place: exactly one is given."""
    given_models = models not in ((), None)
    given_providers = providers not in ((), None)
    if given_models and given_providers:
        raise ConfigurationError(f"{owner}: give providers= or models=, not both")
    if not given_models and not given_providers:
        raise ConfigurationError(
            f"{owner} needs providers=[Provider(...)] or models=['openai:gpt-4o-mini', ...]"
        )
    if not given_models:
        return providers
    if isinstance(models, str | bytes | Mapping) or not isinstance(models, Iterable):
        raise ConfigurationError(
            f"{owner}.models must be a list of model strings, got {type(models).__name__}"
        )
    listed = list(models)
    for index, model in enumerate(listed):
        if not isinstance(model, str):
            raise ConfigurationError(
                f"{owner}.models[{index}] must be a model string such as "
                f"'anthropic:claude-haiku-4-5', got {type(model).__name__}"
            )
    return listed


def _providers(owner: str, providers: object) -> tuple[Provider, ...]:
    if isinstance(providers, Provider | str):
        providers = [providers]
    if isinstance(providers, bytes | Mapping) or not isinstance(providers, Iterable):
        raise ConfigurationError(
            f"{owner}.providers must be a list of Provider or model strings, "
            f"got {type(providers).__name__}"
        )
    listed: Sequence[object] = list(providers)
    if not listed:
        raise ConfigurationError(f"{owner}.providers must name at least one Provider")
    checked: list[Provider] = []
    for index, provider in enumerate(listed):
        if isinstance(provider, str):
            try:
                provider = Provider.parse(provider)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{owner}.providers[{index}]: {exc.message}") from None
        if not isinstance(provider, Provider):
            raise ConfigurationError(
                f"{owner}.providers[{index}] must be a Provider or a model string "
                f"('openai:gpt-4o-mini'), got {type(provider).__name__}"
            )
        checked.append(provider)
    return tuple(distinct_names(checked, f"{owner}.providers"))


def _handlers(owner: str, on_event: object) -> tuple[EventHandler, ...]:
    handlers = [on_event] if callable(on_event) else list(as_list(f"{owner}.on_event", on_event))
    if not all(callable(h) for h in handlers):
        raise ConfigurationError(f"{owner}.on_event must be a callable or callables")
    return tuple(handlers)


def _check_type(owner: str, name: str, value: object, kind: type, what: str) -> None:
    if value is not None and not isinstance(value, kind):
        raise ConfigurationError(f"{owner}.{name} must be {what}")


def _check_telemetry(owner: str, telemetry: object) -> None:
    if telemetry is None:
        return
    # Looked up, not imported: that module needs opentelemetry, and whatever was passed
    # here, if it is a Telemetry, has loaded it already.
    module = sys.modules.get(f"{__package__}.extras.telemetry")
    if module is None or not isinstance(telemetry, module.Telemetry):
        raise ConfigurationError(
            f"{owner}.telemetry must be a resilient_llm.extras.telemetry.Telemetry, "
            f"got {type(telemetry).__name__}"
        )
