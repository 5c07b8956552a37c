"""What the engine knows about a provider kind, apart from its SDK: a :class:`ProviderSpec`.

A spec is plain data plus one factory; nothing here imports an SDK, so the registry can hold
every kind while an application imports only the SDKs of the routes it builds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..messages import ChatRequest
from ._protocol import ChatAdapter

__all__ = ["ProviderSpec"]


@dataclass(frozen=True)
class ProviderSpec:
    """One provider kind: how to build its adapter and what the engine must know of it.

    ``adapter`` builds the route's :class:`~resilient_llm.providers.ChatAdapter`; it imports
    its SDK then (not when the spec is registered). ``sdk`` names the module it needs and
    ``install`` what to ``pip install`` when that module is missing.

    ``env_keys`` are the environment variables a key is read from when the ``Provider``
    gives none, in order; such a key goes only to ``official_host`` over https, or to the
    base URL in the variable ``env_base_url`` (see ``Provider.takes_env_key``).

    ``charges_reserved_output``: the provider counts a request's ``max_tokens`` against its
    token quota as the request arrives (OpenAI), so a reservation is not given back when the
    reply is shorter. ``cache_reads_count``: prompt-cache reads count toward the input-token
    limits (Anthropic leaves them out on most models). ``needs_a_turn``: the family refuses
    a request of system messages only. ``unsendable`` says why a request cannot be carried
    faithfully (or None), so the engine skips the route for it without a call;
    ``unsendable_to`` is the same check given the route's ``Provider`` too (its model,
    options, capabilities). ``async_transport`` says whether the route takes
    ``options["async_transport"]``.

    ``telemetry_name`` is OpenTelemetry's ``gen_ai.provider.name``; ``langsmith_name`` the
    ``ls_provider`` LangSmith shows.
    """

    # Called with the route's ``Provider`` (typed loosely: that class reads the registry).
    adapter: Callable[[Any], ChatAdapter]
    sdk: str
    install: str
    env_keys: tuple[str, ...] = ()
    official_host: str | None = None
    env_base_url: str | None = None
    charges_reserved_output: bool = False
    cache_reads_count: bool = True
    needs_a_turn: bool = False
    unsendable: Callable[[ChatRequest], str | None] | None = None
    unsendable_to: Callable[[ChatRequest, Any], str | None] | None = None
    async_transport: bool = False
    telemetry_name: str | None = None
    langsmith_name: str | None = None
