"""The engine's word on API keys before any call: which routes have none, which withhold one.

Where a key is taken from is :meth:`~resilient_llm.providers.base.Provider.resolve_key`'s
rule (an environment key goes only to its own provider's endpoint); this module tells the
caller about it in time, and never holds or prints a key.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Sequence
from urllib.parse import urlparse

from .errors import AuthError
from .providers.base import ENV_KEYS, Provider

__all__ = ["check_keys", "note_withheld_key"]

_log = logging.getLogger("resilient_llm")


def check_keys(providers: Sequence[Provider]) -> None:
    """Raise ``AuthError`` naming each route's variables when no route has a key.

    A route without a key fails its attempt, is disabled, and the call moves on; when that
    is every route, one error naming each route's variables says more than the last
    route's failure would, and no SDK is loaded for nothing. A route with a ``base_url``
    always goes (a local server takes a placeholder).
    """
    missing: list[Provider] = []
    for provider in providers:
        if provider.base_url is not None or provider.resolve_key() is not None:
            return
        missing.append(provider)
    wants = "; ".join(f"{p.name}: {' or '.join(ENV_KEYS.get(p.kind, ()))}" for p in missing)
    raise AuthError(
        f"no API key for any route ({wants}): set these environment variables or pass "
        "Provider(api_key=...)",
        provider=missing[0].name if len(missing) == 1 else None,
    )


def note_withheld_key(provider: Provider) -> None:
    """Log once, at start-up, that an environment key is not sent to a third-party
    ``base_url``, so a 401 from that service is no mystery. Quiet for a loopback server,
    which rarely wants a key."""
    if provider.api_key is not None or provider.base_url is None or provider.takes_env_key():
        return
    variables = [v for v in ENV_KEYS.get(provider.kind, ()) if os.environ.get(v)]
    host = _host(provider.base_url)
    if not variables or host is None or _is_loopback(host):
        return
    _log.warning(
        "route %r: %s is not sent to %s, which is not %s's own endpoint; pass "
        "Provider(api_key=...) if that service needs a key",
        provider.name,
        variables[0],
        host,
        provider.kind,
    )


def _host(url: str) -> str | None:
    try:
        return urlparse(url).hostname
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
