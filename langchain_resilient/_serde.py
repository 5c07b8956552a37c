"""``ChatResilientLLM`` as LangChain serializes it (``dumpd`` / ``load``) and as it pickles.

The engine's options are objects (``Provider``, ``RetryPolicy``...), not JSON: the
serialized form holds each as a dict of its fields, which the constructor takes back
(:func:`revive`). Keys never enter that form. LangChain replaces a secret only in a
top-level constructor argument (a marker nested in a list would be escaped as user data),
so a route's key travels as one: ``<route>_api_key``, which ``lc_secrets`` maps to an
environment variable: the family's own (``OPENAI_API_KEY``...) for a route to the
family's official endpoint, ``RESILIENT_LLM_<ROUTE>_API_KEY`` for any other endpoint (so
``load(..., secrets_from_env=True)`` never sends ``OPENAI_API_KEY`` to a third party, as
the engine never does) or for a second key of one family. ``load`` fills each from
``secrets_map`` or the environment; a route whose key is found nowhere is built without
one (and reads its family's variable at call time, where the engine allows it).

Options that are code or live connections (``on_event``, ``clock``, ``state``,
``response_cache``, ``telemetry``, ``adapter_factory``) are "not implemented" in JSON, as
LangChain marks any such value; a pickle keeps them (they pickle as they are), and reads
keys from the same environment variables when it is loaded.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from resilient_llm import (
    BreakerPolicy,
    Capabilities,
    Hedge,
    Provider,
    RateLimit,
    RetryBudget,
    RetryPolicy,
    StreamRecovery,
    StreamTimeouts,
    Window,
)
from resilient_llm.options import OPTION_DEFAULTS, EngineOptions
from resilient_llm.providers import provider_spec

from . import _callbacks

__all__ = ["engine_kwargs", "key_arguments", "object_options", "revive", "unpickle"]

_POLICIES: dict[str, type] = {
    "retry": RetryPolicy,
    "breaker": BreakerPolicy,
    "retry_budget": RetryBudget,
    "stream_timeouts": StreamTimeouts,
    "hedge": Hedge,
    "stream_recovery": StreamRecovery,
}
_PLAIN = ("timeout", "spill_over", "adaptive_limits", "jitter_seed", "on_refusal")
# Engine option -> field name here (the engine's ``cache`` is ``response_cache``).
_OBJECTS = {
    "on_event": "on_event",
    "clock": "clock",
    "adapter_factory": "adapter_factory",
    "state": "state",
    "cache": "response_cache",
    "telemetry": "telemetry",
}
_KEY_SUFFIX = "_api_key"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "route"


def key_arguments(providers: Sequence[Provider]) -> dict[str, tuple[int, str]]:
    """For each route given a key: its argument name -> (route index, environment variable)."""
    found: dict[str, tuple[int, str]] = {}
    family_keys: dict[str, Any] = {}
    for index, route in enumerate(providers):
        if route.api_key is None:
            continue
        argument = _slug(route.name) + _KEY_SUFFIX
        while argument in found:
            argument = f"{argument.removesuffix(_KEY_SUFFIX)}_{index}{_KEY_SUFFIX}"
        own = provider_spec(route.kind).env_keys
        # An empty environment: whether the endpoint is the family's own, not whether this
        # process happens to point the family's base-URL variable at it.
        family = own[0] if own and route.takes_env_key({}) else None
        if family is not None and family_keys.setdefault(family, route.api_key) == route.api_key:
            found[argument] = (index, family)
        else:
            variable = "RESILIENT_LLM_" + argument.upper()
            found[argument] = (index, variable)
    return found


def _fields(value: object) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}  # type: ignore[arg-type]


def _rate_limit(limit: RateLimit) -> dict[str, Any]:
    """The limit's fields as JSON: the three of one window always (the shape before
    several windows existed), the others when set, extra windows as objects."""
    out = _fields(limit)
    out["more"] = [_fields(window) for window in limit.more]
    first = ("requests_per_minute", "tokens_per_minute", "window")
    return {k: v for k, v in out.items() if k in first or v}


def _route(route: Provider, keyed: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": route.kind, "model": route.model}
    if route.named or keyed:  # a keyed route's argument is found by its name
        out["name"] = route.name
    optional = {
        "base_url": route.base_url,
        "timeout": route.timeout,
        "max_concurrency": route.max_concurrency,
        "options": dict(route.options) or None,
        "rate_limit": _rate_limit(route.rate_limit) if route.rate_limit else None,
        "capabilities": (
            {k: v for k, v in _fields(route.capabilities).items() if v is not None}
            if route.capabilities
            else None
        ),
    }
    return out | {k: v for k, v in optional.items() if v is not None}


def engine_kwargs(options: EngineOptions) -> dict[str, Any]:
    """The engine's routes and policies as JSON-able constructor arguments (keys excluded)."""
    providers: Sequence[Provider] = options.providers  # type: ignore[assignment]
    keyed = {index for index, _ in key_arguments(providers).values()}
    out: dict[str, Any] = {
        "providers": [_route(p, i in keyed) for i, p in enumerate(providers)],
    }
    for name in _POLICIES:
        value = getattr(options, name)
        if value != OPTION_DEFAULTS[name]:
            out[name] = None if value is None else _fields(value)
    for name in _PLAIN:
        value = getattr(options, name)
        if value != OPTION_DEFAULTS[name]:
            out[name] = value
    return out


def object_options(options: EngineOptions) -> dict[str, Any]:
    """The options that are objects, by field name, where set (``on_event`` without the
    handler this package adds, which every engine built here gets again)."""
    out: dict[str, Any] = {}
    for name, field in _OBJECTS.items():
        value = getattr(options, name)
        if name == "on_event":
            value = [h for h in value if h is not _callbacks.forward]
        if value:
            out[field] = value
    return out


def revive(data: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments with the serialized forms turned back into the engine's types:
    route dicts into ``Provider``, policy dicts into policies, ``<route>_api_key`` into
    its route's key. ``None`` for an object option (a value ``load`` could not rebuild and
    was told to ignore) is its default."""
    data = dict(data)
    for field in _OBJECTS.values():
        value = data.get(field)
        if isinstance(value, list):
            value = data[field] = [v for v in value if v is not None]
        if field in data and (value is None or value == []):
            del data[field]
    for name, cls in _POLICIES.items():
        if isinstance(data.get(name), Mapping):
            data[name] = cls(**data[name])
    routes = data.get("providers")
    if isinstance(routes, Sequence) and not isinstance(routes, str):
        keys = {k: data.pop(k) for k in list(data) if k.endswith(_KEY_SUFFIX)}
        data["providers"] = [_provider(r, keys) if isinstance(r, Mapping) else r for r in routes]
        if keys:
            raise ValueError(
                f"{sorted(keys)}: no route of that name takes a key here (the serialized "
                "form names a route's key <route name>_api_key)"
            )
    return data


def _provider(route: Mapping[str, Any], keys: dict[str, Any]) -> Provider:
    given = dict(route)
    if isinstance(given.get("rate_limit"), Mapping):
        fields = dict(given["rate_limit"])
        more = fields.pop("more", ())
        windows = [Window(**w) if isinstance(w, Mapping) else w for w in more]
        given["rate_limit"] = RateLimit(**fields, more=windows)
    if isinstance(given.get("capabilities"), Mapping):
        given["capabilities"] = Capabilities(**given["capabilities"])
    name = given.get("name")
    argument = _slug(name) + _KEY_SUFFIX if isinstance(name, str) else None
    if argument in keys:
        given["api_key"] = keys.pop(argument) or None
    return Provider(**given)


def unpickle(cls: type, kwargs: dict[str, Any], variables: Mapping[str, str]) -> Any:
    """A pickled model, its keys read from the environment variables named for them."""
    keys = {argument: os.environ.get(variable) or None for argument, variable in variables.items()}
    return cls(**kwargs, **keys)
