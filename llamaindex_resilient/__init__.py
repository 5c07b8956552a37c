"""resilient-llm for LlamaIndex: ``ResilientLLM``, a ``FunctionCallingLLM`` over the engine.

::

    from resilient_llm import Provider
    from llamaindex_resilient import ResilientLLM

    llm = ResilientLLM(providers=[Provider("openai", model="gpt-4o-mini"),
                                  Provider("anthropic", model="claude-haiku-4-5")])
    llm.complete("What is the capital of France?").text
"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:
    raise ModuleNotFoundError(
        "llamaindex_resilient needs LlamaIndex (llama-index-core): "
        "pip install 'resilient-llm[llamaindex]'",
        name=exc.name,
    ) from exc

from .base import ResilientLLM, model_limits
from .events import (
    ResilientAttemptEvent,
    ResilientBreakerEvent,
    ResilientEngineEvent,
    ResilientEvent,
    ResilientFailoverEvent,
    ResilientRetryEvent,
    dispatch_event,
)

__all__ = [
    "ResilientAttemptEvent",
    "ResilientBreakerEvent",
    "ResilientEngineEvent",
    "ResilientEvent",
    "ResilientFailoverEvent",
    "ResilientLLM",
    "ResilientRetryEvent",
    "dispatch_event",
    "model_limits",
]
