"""``dumpd`` / ``load`` and pickle round-trip a ``ChatResilientLLM``, and no key is written.

A key given as ``Provider(api_key=...)`` becomes a LangChain secret: the serialized form
names an environment variable (``lc_secrets``), and ``load`` fills it from ``secrets_map``
or the environment. A pickle holds no key either: it is read again from the same
variables where the pickle is loaded (another process, for multiprocessing).
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.load import dumpd, dumps, load

from langchain_resilient import ChatResilientLLM
from resilient_llm import (
    BreakerPolicy,
    Capabilities,
    FakeClock,
    Hedge,
    Provider,
    RateLimit,
    ResilientLLM,
    RetryPolicy,
    StreamTimeouts,
)
from resilient_llm.events import Event
from resilient_llm.testing.chaos import ChaosServer

from ._chaos import MODELS

CANARY = "sk-canary-5e1d0c7a"
CANARY_2 = "sk-canary-9b8f2e44"
QUESTION = "What is the capital of France?"

pytestmark = pytest.mark.filterwarnings(
    "ignore::langchain_core._api.beta_decorator.LangChainBetaWarning"
)


@pytest.fixture
def server() -> Iterator[ChaosServer]:
    with ChaosServer() as chaos:
        yield chaos


def _full() -> ChatResilientLLM:
    return ChatResilientLLM(
        providers=[
            Provider(
                "openai",
                "gpt-4o-mini",
                api_key=CANARY,
                rate_limit=RateLimit(requests_per_minute=500, tokens_per_minute=200_000),
                timeout=20,
                max_concurrency=8,
            ),
            Provider(
                "anthropic",
                "claude-haiku-4-5",
                capabilities=Capabilities(context_window=100_000),
                options={"async_transport": "httpx"},
            ),
            Provider(
                "openai",
                "meta-llama/llama-3.3-70b-instruct",
                name="openrouter",
                base_url="https://openrouter.ai/api/v1",
                api_key=CANARY_2,
            ),
        ],
        retry=RetryPolicy(max_retries=2, base=0.1, cap=2),
        breaker=BreakerPolicy(failure_threshold=3, cooldown=15),
        timeout=45,
        retry_budget=None,
        stream_timeouts=StreamTimeouts(first_token=5, idle=2),
        hedge=Hedge(1.5),
        jitter_seed=3,
        on_refusal="failover",
        temperature=0.3,
        seed=11,
        provider_options={"anthropic": {"top_k": 5}},
    )


def _load(data: Any, **options: Any) -> ChatResilientLLM:
    loaded = load(
        data,
        valid_namespaces=["langchain_resilient"],
        allowed_objects=[ChatResilientLLM],
        **options,
    )
    assert isinstance(loaded, ChatResilientLLM)
    return loaded


def _keys(model: ChatResilientLLM) -> list[str | None]:
    return [p.api_key.reveal() if p.api_key else None for p in model.resilient_engine.providers]


def test_no_key_is_written_and_each_is_named() -> None:
    model = _full()
    assert model.lc_secrets == {
        "openai_api_key": "OPENAI_API_KEY",
        # Not OPENAI_API_KEY: the engine never sends that key to a third party, nor does load.
        "openrouter_api_key": "RESILIENT_LLM_OPENROUTER_API_KEY",
    }
    serialized = dumpd(model)
    for text in (json.dumps(serialized), dumps(model), dumps(model, pretty=True)):
        assert CANARY not in text
        assert CANARY_2 not in text
    kwargs = serialized["kwargs"]
    assert kwargs["openai_api_key"] == {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}
    assert [r.get("name") for r in kwargs["providers"]] == ["openai", None, "openrouter"]
    assert "api_key" not in json.dumps(kwargs["providers"])


def test_load_rebuilds_the_routes_policies_and_parameters() -> None:
    model = _full()
    loaded = _load(
        dumpd(model),
        secrets_map={"OPENAI_API_KEY": CANARY, "RESILIENT_LLM_OPENROUTER_API_KEY": CANARY_2},
    )
    engine, original = loaded.resilient_engine, model.resilient_engine
    assert engine is not original
    assert engine.providers == original.providers  # kind, model, name, key, URL, limits...
    assert _keys(loaded) == [CANARY, None, CANARY_2]
    assert [p.name for p in engine.providers] == ["openai", "anthropic", "openrouter"]
    for option in ("retry", "breaker", "timeout", "retry_budget", "stream_timeouts", "hedge"):
        assert getattr(engine.options, option) == getattr(original.options, option), option
    assert (engine.options.jitter_seed, engine.options.on_refusal) == (3, "failover")
    assert (loaded.temperature, loaded.seed) == (0.3, 11)
    assert loaded.provider_options == {"anthropic": {"top_k": 5}}
    assert loaded.profile == model.profile
    assert dumpd(loaded) == dumpd(model)


def test_load_reads_keys_from_the_environment_and_never_a_family_key_for_a_third_party(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serialized = dumpd(_full())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.delenv("RESILIENT_LLM_OPENROUTER_API_KEY", raising=False)
    loaded = _load(serialized, secrets_from_env=True)
    assert _keys(loaded) == ["sk-from-env", None, None]
    monkeypatch.setenv("RESILIENT_LLM_OPENROUTER_API_KEY", "sk-router")
    assert _keys(_load(serialized, secrets_from_env=True))[2] == "sk-router"


def test_two_keys_of_one_family_get_two_variables() -> None:
    model = ChatResilientLLM(
        providers=[
            Provider("openai", "gpt-4o-mini", api_key=CANARY),
            Provider("openai", "gpt-4.1-mini", name="second-account", api_key=CANARY_2),
            Provider("openai", "gpt-4.1", name="same-account", api_key=CANARY),
        ]
    )
    assert model.lc_secrets == {
        "openai_api_key": "OPENAI_API_KEY",
        "second_account_api_key": "RESILIENT_LLM_SECOND_ACCOUNT_API_KEY",
        "same_account_api_key": "OPENAI_API_KEY",
    }


def test_a_loaded_model_answers_and_fails_over(server: ChaosServer) -> None:
    routes = [
        Provider(kind, MODELS[kind], base_url=server.base_url(kind), api_key="chaos")
        for kind in ("openai", "anthropic")
    ]
    model = ChatResilientLLM(providers=routes, retry=RetryPolicy(max_retries=0), timeout=20)
    secrets = {name: "chaos" for name in model.lc_secrets.values()}
    loaded = _load(json.loads(dumps(model)), secrets_map=secrets)
    server.script("openai", "overloaded")
    reply = loaded.invoke(QUESTION)
    assert reply.content == "The capital of France is Paris."
    assert reply.response_metadata["provider"] == "anthropic"
    assert [r.provider for r in server.log] == ["openai", "anthropic"]


def test_a_shared_engine_is_written_as_its_routes() -> None:
    engine = ResilientLLM(
        [Provider("gemini", "gemini-2.5-flash", api_key=CANARY)], retry=RetryPolicy(max_retries=1)
    )
    model = ChatResilientLLM(engine=engine, temperature=0.1)
    serialized = dumpd(model)
    assert CANARY not in json.dumps(serialized)
    loaded = _load(serialized, secrets_map={"GOOGLE_API_KEY": CANARY})
    assert loaded.resilient_engine.providers == engine.providers
    assert loaded.resilient_engine.retry == engine.retry


def _handler(event: Event) -> None:
    pass


def test_options_that_are_code_are_not_implemented_in_json() -> None:
    model = ChatResilientLLM(
        providers=[Provider("openai", "gpt-4o-mini")], clock=FakeClock(), on_event=_handler
    )
    serialized = dumpd(model)
    assert serialized["kwargs"]["clock"]["type"] == "not_implemented"
    with pytest.raises(NotImplementedError):
        _load(serialized)
    loaded = _load(serialized, ignore_unserializable_fields=True)
    assert loaded.resilient_engine.options.clock is None
    assert loaded.resilient_engine.providers == model.resilient_engine.providers


def test_an_unmatched_key_argument_is_an_error() -> None:
    given: dict[str, Any] = {
        "providers": [{"kind": "openai", "model": "gpt-4o-mini"}],
        "anthropic_api_key": "k",
    }
    with pytest.raises(ValueError, match="anthropic_api_key"):
        ChatResilientLLM(**given)


# -- pickle --------------------------------------------------------------------------------


def test_a_pickle_holds_no_key() -> None:
    model = _full()
    data = pickle.dumps(model)
    assert CANARY.encode() not in data
    assert CANARY_2.encode() not in data
    bound = pickle.dumps(model.bind(temperature=0))
    assert CANARY.encode() not in bound


def test_a_pickle_keeps_handlers_and_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-again")
    model = ChatResilientLLM(
        providers=[Provider("openai", "gpt-4o-mini", api_key=CANARY)],
        on_event=_handler,
        breaker=BreakerPolicy(failure_threshold=2),
        streaming=True,
    )
    copy = pickle.loads(pickle.dumps(model))
    assert isinstance(copy, ChatResilientLLM)
    assert copy.resilient_engine.breaker_policy == BreakerPolicy(failure_threshold=2)
    assert _handler in tuple(copy.resilient_engine.options.on_event)  # type: ignore[arg-type]
    assert copy.streaming is True
    assert _keys(copy) == ["sk-again"]


_WORKER = """
import base64, pickle, sys
model = pickle.loads(base64.b64decode(sys.stdin.read()))
print(model.invoke("What is the capital of France?").content)
"""


def test_a_pickled_model_answers_in_another_process(server: ChaosServer) -> None:
    route = Provider("openai", "gpt-4o-mini", base_url=server.base_url("openai"), api_key="chaos")
    model = ChatResilientLLM(providers=[route], timeout=20)
    (variable,) = model.lc_secrets.values()
    data = pickle.dumps(model)
    assert b"chaos" not in data.replace(b"chaos/", b"").replace(b"ChaosServer", b"")
    worker = subprocess.run(
        [sys.executable, "-c", _WORKER],
        input=base64.b64encode(data).decode(),
        env={**os.environ, variable: "chaos"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr
    assert worker.stdout.strip() == "The capital of France is Paris."
    assert [r.provider for r in server.log] == ["openai"]
