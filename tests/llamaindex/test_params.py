"""Generation parameters: fields, ``additional_kwargs`` and call keywords -> engine options."""

from __future__ import annotations

import pytest

from llamaindex_resilient import ResilientLLM
from llamaindex_resilient._params import call_options, split_additional
from resilient_llm import ConfigurationError

from .conftest import Routes


def test_additional_kwargs_map_to_parameters_and_families() -> None:
    params, options = split_additional(
        {
            "top_p": 0.5,
            "max_completion_tokens": 64,
            "stop_sequences": ["END"],
            "anthropic": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
            "openai": {"logprobs": True},
            "provider_options": {"openai": {"user": "u1"}},
        },
        "additional_kwargs",
    )
    assert params == {"top_p": 0.5, "max_tokens": 64, "stop": ["END"]}
    assert options == {
        "anthropic": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        "openai": {"logprobs": True, "user": "u1"},
    }


def test_what_cannot_be_mapped_raises_naming_it() -> None:
    with pytest.raises(ConfigurationError, match=r"additional_kwargs\['logprobs'\] cannot be"):
        split_additional({"logprobs": True}, "additional_kwargs")
    with pytest.raises(ConfigurationError, match=r"\['openai'\] must be a dict"):
        split_additional({"openai": True}, "additional_kwargs")


def test_precedence_fields_then_additional_then_call() -> None:
    options = call_options(
        {"temperature": 0.1, "seed": 1, "top_p": None},
        {"seed": 2, "openai": {"a": 1, "b": 1}},
        {
            "additional_kwargs": {"seed": 3, "openai": {"b": 2}},
            "provider_options": {"openai": {"c": 3}},
            "top_p": 0.9,
            "reasoning_effort": "low",
            "formatted": True,  # LlamaIndex's own keyword, not a request parameter
        },
    )
    assert options == {
        "temperature": 0.1,
        "seed": 3,
        "top_p": 0.9,
        "reasoning_effort": "low",
        "provider_options": {"openai": {"a": 1, "b": 2, "c": 3}},
    }


def test_the_llm_refuses_unmappable_additional_kwargs(openai_routes: Routes) -> None:
    with pytest.raises(ConfigurationError, match=r"\['response_format'\] cannot be mapped"):
        openai_routes.llm(additional_kwargs={"response_format": {"type": "json_object"}})


def test_seed_is_the_models_and_jitter_seed_the_engines(openai_routes: Routes) -> None:
    llm = openai_routes.llm(seed=7, jitter_seed=3, top_p=0.5, reasoning_effort="high")
    assert (llm.seed, llm.top_p, llm.reasoning_effort) == (7, 0.5, "high")
    assert isinstance(llm, ResilientLLM)
