"""One chaos server per test process, for the standard suites' ``chat_model_params``.

``chat_model_params`` is a property the suites read outside any fixture, so the server is a
lazily started module singleton, stopped at interpreter exit.
"""

from __future__ import annotations

import atexit

from resilient_llm import Provider
from resilient_llm.testing.chaos import ChaosServer

__all__ = ["MODELS", "provider", "server"]

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
_SERVER: list[ChaosServer] = []


def server() -> ChaosServer:
    if not _SERVER:
        started = ChaosServer().start()
        atexit.register(started.stop)
        _SERVER.append(started)
    return _SERVER[0]


def provider(kind: str, chaos: ChaosServer | None = None, *, name: str | None = None) -> Provider:
    """A route of family ``kind`` pointing at the chaos server (prefix ``name or kind``)."""
    prefix = name or kind
    return Provider(
        kind,  # type: ignore[arg-type]
        MODELS[kind],
        name=prefix,
        base_url=(chaos or server()).base_url(prefix),
        api_key="chaos",
    )
