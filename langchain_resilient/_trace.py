"""What traces show: the route that answered, not the primary named before the call.

LangChain takes a run's ``ls_model_name`` / ``ls_provider`` from ``_get_ls_params`` before
the call, when only the primary route is known. A model behind a gateway learns the real
one from the reply; langchain-core's tracer reads it from a generation's
``generation_info["lc_gateway_metadata"]`` (``model``, ``provider``) at the run's end and
puts it on the run's metadata, in place of the names taken at its start. Each reply here
carries the answering route there, in ``llm_output`` and in ``response_metadata``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resilient_llm import Provider
from resilient_llm.providers import provider_spec

__all__ = ["GATEWAY_KEY", "Answered", "answered_by"]

# The key langchain-core's tracer promotes to run metadata (langchain_core.utils._gateway,
# a private module: the name is the contract, so it is spelled out here).
GATEWAY_KEY = "lc_gateway_metadata"


@dataclass(frozen=True)
class Answered:
    """The route that answered a call: its name, its family's LangSmith name, the model,
    and its provider kind ("" when no route has that name)."""

    route: str
    ls_provider: str
    model: str
    kind: str = ""

    def generation_info(self) -> dict[str, Any]:
        return {GATEWAY_KEY: {"provider": self.ls_provider, "model": self.model}}

    def llm_output(self) -> dict[str, Any]:
        return {"model_name": self.model, "provider": self.route}


def answered_by(providers: Sequence[Provider], route: str, model: str) -> Answered:
    """The trace identity of a reply from ``route`` (a route name) with ``model``."""
    # LangSmith's provider name for the family (what the partner packages report).
    kind = next((p.kind for p in providers if p.name == route), "")
    label = provider_spec(kind).langsmith_name if kind else None
    return Answered(route, label or kind or "resilient-llm", model, kind)
