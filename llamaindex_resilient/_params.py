"""Generation parameters: the LLM's fields, ``additional_kwargs`` and a call's keywords,
merged into the engine's per-call options.

``additional_kwargs`` is LlamaIndex's place for request parameters beyond the fields.
Every route of a resilient LLM may be another family, so its keys are mapped, not sent
blindly:

- a parameter every family is given in its own form (``temperature``, ``top_p``,
  ``seed``, ``stop``, ``max_tokens``, ``parallel_tool_calls``, ``reasoning_effort``; also
  OpenAI's ``max_completion_tokens``, Gemini's ``max_output_tokens`` and Anthropic's
  ``stop_sequences`` by their names) becomes that request parameter;
- a provider kind (``"openai"``, ``"anthropic"``, ``"gemini"``, a registered kind) maps to
  that family's own parameters, sent as they are to its routes only (the engine's
  ``provider_options``), e.g. ``{"anthropic": {"thinking": {...}}, "openai":
  {"logprobs": True}}``; ``"provider_options"`` itself is taken too;
- anything else raises :class:`~resilient_llm.ConfigurationError` naming the key, since
  sending one family's parameter to another is a 400 at failover time.

Precedence, lowest first: the fields, ``additional_kwargs``, the call's
``additional_kwargs=``, the call's own keywords. Provider options merge key by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resilient_llm import ConfigurationError
from resilient_llm.providers import known_kinds

__all__ = ["CALL_OPTIONS", "GENERATION", "call_options", "split_additional"]

GENERATION = (
    "temperature",
    "max_tokens",
    "top_p",
    "seed",
    "stop",
    "parallel_tool_calls",
    "reasoning_effort",
)
_ALIASES = {
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "stop_sequences": "stop",
}
# What a call may pass besides the generation parameters; LlamaIndex's own keywords
# (``formatted``, ``verbose``...) are not request parameters and are left to it.
CALL_OPTIONS = frozenset(
    {*GENERATION, "tools", "tool_choice", "response_schema", "json_mode", "model", "timeout"}
)

Options = dict[str, dict[str, Any]]


def split_additional(extra: object, where: str) -> tuple[dict[str, Any], Options]:
    """``(request parameters, provider options)`` for an ``additional_kwargs`` dict."""
    if not isinstance(extra, Mapping):
        raise ConfigurationError(f"{where} must be a dict, got {type(extra).__name__}")
    params: dict[str, Any] = {}
    options: Options = {}
    kinds = known_kinds()
    for key, value in extra.items():
        name = _ALIASES.get(key, key)
        if name in GENERATION:
            params[name] = value
        elif key == "provider_options":
            for kind, values in _options(value, f"{where}['provider_options']").items():
                options.setdefault(kind, {}).update(values)
        elif key in kinds:
            options.setdefault(key, {}).update(_family(value, f"{where}[{key!r}]"))
        else:
            raise ConfigurationError(
                f"{where}[{key!r}] cannot be mapped to every route: it is not one of "
                f"{list(GENERATION)}. A family's own parameter goes under its kind, sent "
                f"to that family's routes only: {where.rsplit('[', 1)[0]}="
                f"{{'openai': {{{key!r}: ...}}}} (kinds: {list(kinds)})"
            )
    return params, options


def _family(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigurationError(f"{where} must be a dict of that family's parameters")
    return dict(value)


def _options(value: object, where: str) -> Options:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where} must map a provider kind to a dict")
    return {str(kind): _family(v, f"{where}[{kind!r}]") for kind, v in value.items()}


def call_options(
    fields: Mapping[str, Any], additional: Mapping[str, Any], call: Mapping[str, Any]
) -> dict[str, Any]:
    """The engine's options for one call (see the module's docstring for precedence)."""
    options: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    params, provider = split_additional(additional, "additional_kwargs")
    options.update(params)
    if call.get("additional_kwargs") is not None:
        params, more = split_additional(call["additional_kwargs"], "the call's additional_kwargs")
        options.update(params)
        _merge(provider, more)
    if call.get("provider_options") is not None:
        _merge(provider, _options(call["provider_options"], "provider_options"))
    options.update({k: v for k, v in call.items() if k in CALL_OPTIONS and v is not None})
    if provider:
        options["provider_options"] = provider
    return options


def _merge(into: Options, more: Options) -> None:
    for kind, values in more.items():
        into.setdefault(kind, {}).update(values)
