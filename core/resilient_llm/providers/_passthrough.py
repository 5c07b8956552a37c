"""The parameters a route sends as they are: its ``Provider(options=...)`` and the call's
``provider_options`` for its kind.

Adapter settings in ``Provider.options`` (``async_transport``) configure the client and are
never sent; every other key is a request parameter of that family, sent on every call of
the route, and a call's ``provider_options[kind]`` is laid over them key by key.
"""

from __future__ import annotations

from typing import Any

from ..messages import ChatRequest
from .base import Provider

__all__ = ["ADAPTER_SETTINGS", "passthrough"]

ADAPTER_SETTINGS = frozenset({"async_transport"})
"""``Provider.options`` keys that configure the adapter, not the request."""


def passthrough(provider: Provider, request: ChatRequest) -> dict[str, Any]:
    """The family parameters this route sends for ``request``, call over route."""
    sent = {k: v for k, v in provider.options.items() if k not in ADAPTER_SETTINGS}
    sent.update(request.provider_options.get(provider.kind, {}))
    return sent
