"""resilient-llm: one resilience layer between LLM apps and the providers.

Token estimation, rate limits per route (requests and tokens per minute), bounded retries
with backoff and jitter, provider hints, a circuit breaker per route and failover across
providers, under one deadline, for sync, async and streaming calls.
"""

from __future__ import annotations

import logging

from ._engine import ResilientLLM
from ._version import __version__ as __version__
from .clock import Clock, FakeClock, SystemClock
from .content import Audio, Document, Image, Reasoning, Text
from .errors import (
    AllProvidersFailed,
    AttemptRecord,
    AuthError,
    BadRequest,
    CircuitOpen,
    ConfigurationError,
    ContextLengthExceeded,
    DeadlineExceeded,
    ProviderUnavailable,
    RateLimited,
    RequestTooLarge,
    ResilientLLMError,
    StateUnavailable,
    StreamInterrupted,
)
from .events import Event
from .extras.cache import ResponseCache
from .messages import ChatChunk, ChatRequest, ChatResponse, Message, Tool, ToolCall, Usage
from .policies.backoff import RetryPolicy
from .policies.breaker import BreakerPolicy, CircuitState
from .policies.budget import RetryBudget
from .policies.capabilities import Capabilities
from .policies.limiter import RateLimit, Window
from .policies.tokens import estimate_tokens
from .providers.base import Provider
from .run.continuation import StreamRecovery
from .run.hedge import Hedge
from .run.stall import StreamTimeouts

__all__ = [
    "AllProvidersFailed",
    "AttemptRecord",
    "Audio",
    "AuthError",
    "BadRequest",
    "BreakerPolicy",
    "Capabilities",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "CircuitOpen",
    "CircuitState",
    "Clock",
    "ConfigurationError",
    "ContextLengthExceeded",
    "DeadlineExceeded",
    "Document",
    "Event",
    "FakeClock",
    "Hedge",
    "Image",
    "Message",
    "Provider",
    "ProviderUnavailable",
    "RateLimit",
    "RateLimited",
    "Reasoning",
    "RequestTooLarge",
    "ResilientLLM",
    "ResilientLLMError",
    "ResponseCache",
    "RetryBudget",
    "RetryPolicy",
    "StateUnavailable",
    "StreamInterrupted",
    "StreamRecovery",
    "StreamTimeouts",
    "SystemClock",
    "Text",
    "Tool",
    "ToolCall",
    "Usage",
    "Window",
    "estimate_tokens",
]


# A library logs, the application decides where logs go: without this, Python's
# last-resort handler would print the engine's warnings (failovers) to stderr.
logging.getLogger("resilient_llm").addHandler(logging.NullHandler())
