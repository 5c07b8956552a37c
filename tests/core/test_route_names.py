"""Route names: derived when not given, so the common same-kind fallback just works.

One route per kind keeps the kind as its name (what events, snapshots and the README
show); a second route of a kind is ``kind:model``; names the caller gives win; a clash
that is left raises, naming both providers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_resilient import ChatResilientLLM
from llamaindex_resilient import ResilientLLM as LlamaResilientLLM
from resilient_llm import ConfigurationError, Event, Provider, ResilientLLM, RetryPolicy
from resilient_llm.events import Failover
from resilient_llm.providers.base import distinct_names
from resilient_llm.testing.chaos import ChaosServer


def names(*providers: Provider) -> list[str]:
    return [p.name for p in distinct_names(providers, "providers")]


def test_one_route_per_kind_keeps_the_kind() -> None:
    assert names(
        Provider("openai", "gpt-4o-mini"),
        Provider("anthropic", "claude-haiku-4-5"),
        Provider("gemini", "gemini-2.5-flash"),
    ) == ["openai", "anthropic", "gemini"]


def test_a_second_route_of_a_kind_is_named_after_its_model() -> None:
    assert names(
        Provider("openai", "gpt-4o"),
        Provider("anthropic", "claude-haiku-4-5"),
        Provider("openai", "gpt-4o-mini"),
        Provider("openai", "o3"),
    ) == ["openai", "anthropic", "openai:gpt-4o-mini", "openai:o3"]


def test_given_names_win_and_derived_ones_step_aside() -> None:
    assert names(
        Provider("openai", "gpt-4o"),
        Provider("openai", "gpt-4o-mini", name="openai"),
        Provider("openai", "o3", name="reasoner"),
    ) == ["openai:gpt-4o", "openai", "reasoner"]


def test_a_derived_name_keeps_everything_else() -> None:
    provider = Provider("openai", "gpt-4o-mini", api_key="k", base_url="http://127.0.0.1:9/v1")
    (_, renamed) = distinct_names([Provider("openai", "gpt-4o"), provider], "providers")
    assert renamed.name == "openai:gpt-4o-mini"
    assert not renamed.named
    assert (renamed.kind, renamed.model, renamed.base_url) == (
        "openai",
        "gpt-4o-mini",
        "http://127.0.0.1:9/v1",
    )
    assert renamed.resolve_key() == provider.resolve_key()
    assert provider.name == "openai"  # the caller's object is left as it was


@pytest.mark.parametrize(
    ("providers", "message"),
    [
        (
            [Provider("openai", "gpt-4o"), Provider("openai", "gpt-4o")],
            "providers[0] Provider('openai', model='gpt-4o') and providers[1] "
            "Provider('openai', model='gpt-4o') would both be named 'openai:gpt-4o'",
        ),
        (
            [Provider("openai", "a", name="main"), Provider("gemini", "b", name="main")],
            "providers[0] Provider('openai', model='a', name='main') and providers[1] "
            "Provider('gemini', model='b', name='main') are both named 'main'",
        ),
        (
            [
                Provider("openai", "gpt-4o", name="openai"),
                Provider("openai", "gpt-4o-mini", name="openai:gpt-4o"),
                Provider("openai", "gpt-4o"),
            ],
            "providers[1] Provider('openai', model='gpt-4o-mini', name='openai:gpt-4o') and "
            "providers[2] Provider('openai', model='gpt-4o') are both named 'openai:gpt-4o'",
        ),
    ],
)
def test_a_real_clash_names_both_providers(providers: list[Provider], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        distinct_names(providers, "providers")
    assert message in str(info.value)
    with pytest.raises(ConfigurationError, match=r"ResilientLLM\.providers\[\d\]"):
        ResilientLLM(providers)


@pytest.fixture(scope="module")
def chaos() -> Iterator[ChaosServer]:
    with ChaosServer() as server:
        yield server


def _fallback_pair(chaos: ChaosServer, tag: str) -> list[Provider]:
    """gpt-4o then gpt-4o-mini, both kind openai and unnamed; the first answers 500."""
    primary, second = f"openai-{tag}-big", f"openai-{tag}-mini"
    chaos.script(primary, *["server_error"] * 5)
    return [
        Provider("openai", "gpt-4o", base_url=chaos.base_url(primary), api_key="x"),
        Provider("openai", "gpt-4o-mini", base_url=chaos.base_url(second), api_key="x"),
    ]


def test_the_common_fallback_runs_under_derived_names(chaos: ChaosServer) -> None:
    events: list[Event] = []
    llm = ResilientLLM(
        _fallback_pair(chaos, "engine"), retry=RetryPolicy(max_retries=0), on_event=events.append
    )
    with llm:
        reply = llm.chat("What is the capital of France?")
        assert reply.provider == "openai:gpt-4o-mini"
        assert [(e.route, e.to_route) for e in events if isinstance(e, Failover)] == [
            ("openai", "openai:gpt-4o-mini")
        ]
        assert [r.name for r in llm.snapshot()] == ["openai", "openai:gpt-4o-mini"]


def test_both_plugins_show_the_derived_names(chaos: ChaosServer) -> None:
    retry = RetryPolicy(max_retries=0)
    model = ChatResilientLLM(providers=_fallback_pair(chaos, "lc"), retry=retry)
    message = model.invoke("What is the capital of France?")
    assert message.response_metadata["provider"] == "openai:gpt-4o-mini"
    llm = LlamaResilientLLM(providers=_fallback_pair(chaos, "li"), retry=retry)
    answer = llm.complete("What is the capital of France?")
    assert answer.raw["provider"] == "openai:gpt-4o-mini"  # type: ignore[index]
