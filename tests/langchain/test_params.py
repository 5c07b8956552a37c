"""Generation parameters: fields, model_kwargs, provider_options and call keywords as the
engine's options for one call (what reaches the wire is checked in test_fidelity)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from langchain_resilient import ChatResilientLLM
from resilient_llm import Provider, Tool


def _model(**fields: Any) -> ChatResilientLLM:
    route = Provider("openai", "gpt-4o-mini", api_key="k", base_url="http://127.0.0.1:9/v1")
    return ChatResilientLLM(providers=[route], **fields)


def _options(model: ChatResilientLLM, **kwargs: Any) -> dict[str, Any]:
    return model._call([HumanMessage("hi")], None, kwargs)[1]


def test_fields_then_call_keywords() -> None:
    model = _model(top_p=0.5, seed=7, reasoning_effort="low", temperature=0.1)
    options = _options(model, top_p=0.9, parallel_tool_calls=False)
    assert options["top_p"] == 0.9
    assert options["seed"] == 7
    assert (options["reasoning_effort"], options["temperature"]) == ("low", 0.1)
    assert options["parallel_tool_calls"] is False


def test_bound_keywords_are_call_keywords() -> None:
    model = _model()
    bound = model.bind(seed=3, reasoning_effort="high")
    assert bound.kwargs == {"seed": 3, "reasoning_effort": "high"}  # type: ignore[attr-defined]
    assert _options(model, **bound.kwargs)["seed"] == 3  # type: ignore[attr-defined]


def test_model_kwargs_take_every_routes_parameters_under_any_spelling() -> None:
    model = _model(model_kwargs={"max_completion_tokens": 50, "stop_sequences": ["x"], "seed": 1})
    options = _options(model)
    assert (options["max_tokens"], options["stop"], options["seed"]) == (50, ["x"], 1)
    assert _options(model, seed=2)["seed"] == 2


def test_model_kwargs_refuse_a_familys_own_parameter_naming_provider_options() -> None:
    with pytest.raises(ValueError, match=r"provider_options=\{'openai': \{'logit_bias'"):
        _model(model_kwargs={"logit_bias": {"1": 2}})
    with pytest.raises(ValueError, match="repeats the field top_p"):
        _model(top_p=0.3, model_kwargs={"top_p": 0.4})


def test_provider_options_merge_per_family_the_calls_over_the_fields() -> None:
    model = _model(provider_options={"anthropic": {"top_k": 5}, "openai": {"user": "u"}})
    options = _options(model, provider_options={"anthropic": {"top_k": 9, "x": 1}})
    assert options["provider_options"] == {
        "anthropic": {"top_k": 9, "x": 1},
        "openai": {"user": "u"},
    }
    assert _model()._call([HumanMessage("hi")], None, {})[1]["provider_options"] is None
    with pytest.raises(ValueError, match="provider_options must map a provider kind"):
        _model(provider_options={"openai": 3})


def test_unknown_call_keywords_still_raise() -> None:
    with pytest.raises(TypeError, match="frequency_penalty"):
        _options(_model(), frequency_penalty=1.0)


def test_an_anthropic_form_tool_keeps_its_cache_marker() -> None:
    tool = {
        "name": "pick",
        "description": "Pick a color.",
        "input_schema": {"type": "object", "properties": {"c": {"type": "string"}}},
        "cache_control": {"type": "ephemeral"},
    }
    bound = _model().bind_tools([tool])
    options = _options(_model(), **bound.kwargs)  # type: ignore[attr-defined]
    assert options["tools"] == [
        Tool("pick", "Pick a color.", tool["input_schema"], {"type": "ephemeral"})  # type: ignore[arg-type]
    ]
