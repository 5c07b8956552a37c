"""One options object for the engine and both plugins (issue 16).

``ResilientLLM``, LangChain's ``ChatResilientLLM`` and LlamaIndex's ``ResilientLLM`` take
the same engine options, checked by the same validators, and behave alike on an unknown
keyword and on their framework's own ``rate_limiter``. The plugins derive their options
from ``OPTION_DEFAULTS``; these tests fail when one of them stops doing so.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.rate_limiters import InMemoryRateLimiter
from llama_index.core.rate_limiter import TokenBucketRateLimiter

from langchain_resilient import ChatResilientLLM
from langchain_resilient._options import FIELD_OF_OPTION, EngineFields
from langchain_resilient._runs import NamedRunModel
from llamaindex_resilient import ResilientLLM as LlamaResilientLLM
from resilient_llm import (
    BreakerPolicy,
    ConfigurationError,
    FakeClock,
    Hedge,
    Provider,
    ResilientLLM,
    ResponseCache,
    RetryPolicy,
    StreamRecovery,
    StreamTimeouts,
)
from resilient_llm.events import Event
from resilient_llm.extras.telemetry import Telemetry
from resilient_llm.options import OPTION_DEFAULTS, REQUIRED, EngineOptions
from resilient_llm.state import MemoryState

ROOT = Path(__file__).resolve().parents[1]


def _providers() -> list[Provider]:
    return [Provider("openai", "gpt-4o", api_key="x"), Provider("anthropic", "c", api_key="x")]


def _handler(event: Event) -> None:
    pass


def _factory(provider: Provider) -> Any:
    raise AssertionError("no call is made here")


def _set_values() -> dict[str, Any]:
    """A valid value, other than the default, for every engine option."""
    return {
        "providers": _providers(),
        # Stands for providers=, so it is given apart (see test_models_stand_for_providers).
        "models": ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"],
        "retry": RetryPolicy(max_retries=1),
        "breaker": BreakerPolicy(failure_threshold=2),
        "timeout": 5.0,
        "spill_over": 0.5,
        "retry_budget": None,
        "stream_timeouts": StreamTimeouts(idle=5),
        "adaptive_limits": False,
        "hedge": Hedge(0.2),
        "attempt_timeout": 3.0,
        "on_event": [_handler],
        "clock": FakeClock(),
        "jitter_seed": 7,
        "adapter_factory": _factory,
        "state": MemoryState(),
        "cache": ResponseCache(),
        "telemetry": Telemetry(),
        "on_refusal": "failover",
        "stream_recovery": StreamRecovery(max_resumes=1),
    }


def _langchain(**options: Any) -> ResilientLLM:
    fields = {FIELD_OF_OPTION.get(k, k): v for k, v in options.items()}
    return ChatResilientLLM(**fields).resilient_engine


def _llamaindex(**options: Any) -> ResilientLLM:
    return LlamaResilientLLM(**options).engine


BUILDERS: dict[str, Callable[..., ResilientLLM]] = {
    "engine": lambda **options: ResilientLLM(**options),
    "langchain": _langchain,
    "llamaindex": _llamaindex,
}


# -- one list of options --------------------------------------------------------------------


def test_the_engines_keywords_are_the_options_with_their_defaults() -> None:
    parameters = list(inspect.signature(ResilientLLM.__init__).parameters.values())[1:]
    assert [p.name for p in parameters] == list(OPTION_DEFAULTS)
    for parameter in parameters:
        default = OPTION_DEFAULTS[parameter.name]
        expected = inspect.Parameter.empty if default is REQUIRED else default
        assert parameter.default == expected, parameter.name


def test_the_langchain_fields_are_the_options_with_their_defaults() -> None:
    declared = set(EngineFields.model_fields) - set(NamedRunModel.model_fields)
    assert declared == set(FIELD_OF_OPTION.values())
    assert {o: "response_cache" if o == "cache" else o for o in OPTION_DEFAULTS} == FIELD_OF_OPTION
    fields = ChatResilientLLM.model_fields
    for option, default in OPTION_DEFAULTS.items():
        field = fields[FIELD_OF_OPTION[option]]
        assert field.default == (None if default is REQUIRED else default), option


def test_every_option_has_a_set_value_here() -> None:
    assert list(_set_values()) == list(OPTION_DEFAULTS)


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_every_option_reaches_the_engine(build: Callable[..., ResilientLLM]) -> None:
    given = {name: value for name, value in _set_values().items() if name != "models"}
    options = build(**given).options
    for name, value in given.items():
        held = getattr(options, name)
        if name == "providers":
            assert list(held) == value
        elif name == "on_event":
            assert _handler in options.handlers  # a plugin may add its own forwarder
        else:
            assert held is value or held == value, name


def test_options_are_frozen_and_normalised() -> None:
    provider = _providers()[0]
    options = EngineOptions.from_kwargs({"providers": provider, "timeout": 5, "on_event": _handler})
    assert (options.providers, options.timeout, options.handlers) == ((provider,), 5.0, (_handler,))
    assert isinstance(options.timeout, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.timeout = 1.0  # type: ignore[misc]


# -- the plugins behave alike -------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "owner"),
    [
        (lambda **kw: ResilientLLM(_providers(), **kw), "ResilientLLM"),
        (lambda **kw: ChatResilientLLM(providers=_providers(), **kw), "ChatResilientLLM"),
        (lambda **kw: LlamaResilientLLM(providers=_providers(), **kw), "ResilientLLM"),
    ],
    ids=["engine", "langchain", "llamaindex"],
)
def test_an_invalid_option_names_the_class_built(build: Callable[..., object], owner: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{owner}\.timeout must be a finite number > 0"):
        build(timeout=0)
    with pytest.raises(ValueError, match=rf"\b{owner}\.on_refusal must be 'return' or 'failover'"):
        build(on_refusal="ask")


@pytest.mark.parametrize(
    ("build", "owner"),
    [
        (lambda **kw: ChatResilientLLM(providers=_providers(), **kw), "ChatResilientLLM"),
        (lambda **kw: LlamaResilientLLM(providers=_providers(), **kw), "ResilientLLM"),
        (lambda **kw: EngineOptions.from_kwargs({"providers": _providers(), **kw}), "ResilientLLM"),
    ],
    ids=["langchain", "llamaindex", "options"],
)
def test_an_unknown_option_is_an_error_naming_close_matches(
    build: Callable[..., object], owner: str
) -> None:
    with pytest.raises(ValueError, match=rf"{owner} got an unknown option 'spillover'") as info:
        build(spillover=2.0)
    assert "did you mean 'spill_over'?" in str(info.value)


@pytest.mark.parametrize(
    ("build", "limiter", "framework"),
    [
        (
            lambda **kw: ChatResilientLLM(providers=_providers(), **kw),
            InMemoryRateLimiter(requests_per_second=1),
            "LangChain",
        ),
        (
            lambda **kw: LlamaResilientLLM(providers=_providers(), **kw),
            TokenBucketRateLimiter(requests_per_minute=60),
            "LlamaIndex",
        ),
    ],
    ids=["langchain", "llamaindex"],
)
def test_a_framework_rate_limiter_is_refused_pointing_to_the_routes_limit(
    build: Callable[..., Any], limiter: object, framework: str
) -> None:
    message = (
        rf"does not take a {framework} rate_limiter: .* Provider\(\.\.\., rate_limit=RateLimit"
    )
    with pytest.raises(ValueError, match=message):
        build(rate_limiter=limiter)
    model = build()
    with pytest.raises(ConfigurationError, match=message):
        model.rate_limiter = limiter
    model.rate_limiter = None
    assert model.rate_limiter is None


@pytest.mark.parametrize(
    "build",
    [
        lambda engine, **kw: ChatResilientLLM(engine=engine, **kw),
        lambda engine, **kw: LlamaResilientLLM(engine=engine, **kw),
    ],
    ids=["langchain", "llamaindex"],
)
def test_a_shared_engine_takes_no_engine_options(build: Callable[..., object]) -> None:
    engine = ResilientLLM(_providers())
    for option in ("timeout", "jitter_seed", "on_refusal"):
        with pytest.raises(ValueError, match="engine="):
            build(engine, **{option: _set_values()[option]})


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_models_stand_for_providers(build: Callable[..., ResilientLLM]) -> None:
    engine = build(models=_set_values()["models"])
    assert [(p.kind, p.model) for p in engine.providers] == [
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-haiku-4-5"),
    ]
    with pytest.raises(ValueError, match="not both"):
        build(models=["openai:gpt-4o-mini"], providers=_providers())
    with pytest.raises(ValueError, match=r"models=\["):
        build(timeout=5.0)


# -- no import cycles in the plugins ------------------------------------------------------


def _imports(package: str) -> dict[str, set[str]]:
    """Each module of ``package`` and the modules of it that it imports (``TYPE_CHECKING``
    imports included: a cycle there is still two modules that need each other)."""
    files = {
        ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
        for f in (ROOT / package).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        base = module if path.name == "__init__.py" else module.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                parent = base.rsplit(".", node.level - 1)[0] if node.level else ""
                target = ".".join(p for p in (parent, node.module or "") if p)
                deps |= {
                    f"{target}.{a.name}" if f"{target}.{a.name}" in files else target
                    for a in node.names
                }
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[module] = {d for d in deps if d in files and d != module}
    return graph


@pytest.mark.parametrize("package", ["langchain_resilient", "llamaindex_resilient"])
def test_the_plugins_have_no_import_cycles(package: str) -> None:
    graph = _imports(package)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(
            d == goal or (d not in seen and reaches(d, goal, seen | {d})) for d in graph[start]
        )

    assert [m for m in graph if reaches(m, m, {m})] == []
    assert "langchain_resilient.chat_models" not in graph.get("langchain_resilient._structured", ())
