"""An opt-in response cache: identical requests answered without calling a provider.

``ResilientLLM(providers, cache=ResponseCache())`` keeps replies in this process (an LRU
bounded by entries and optionally bytes, each entry living ``ttl`` seconds);
:class:`~resilient_llm.state.redis.cache.RedisCache` keeps them in Redis, shared by every
process. Any object with ``get``/``set`` and ``include_nonzero_temperature`` will do
(:class:`CacheStore`).

What a caller may rely on:

- The key is a SHA-256 over a canonical JSON of everything that shapes the answer: the
  messages (with tool calls and results), tools, ``tool_choice``, ``response_schema``,
  ``json_mode``, ``temperature``, ``max_tokens``, ``stop``, the per-call ``model``, and the
  engine's routes (kind, name, model, and base URL without credentials or query). API keys
  never enter it, so two deployments with different keys share entries.
- Only requests with ``temperature == 0`` are cached, unless the store was built with
  ``include_nonzero_temperature=True``. ``temperature=None`` means the provider's default
  (1.0 for most), which samples: caching it would freeze one random draw, so it is not.
- Only successful replies are stored; an error never is. A hit makes no provider call and
  takes no limiter slot. Its ``metadata`` says ``cache: "hit"`` with no attempts; a reply
  that went upstream says ``"miss"`` (stored) or ``"bypass"`` (not cacheable).
- Streams: a hit is replayed as one chunk holding the whole reply; a stream that runs to
  its end stores the reply it assembled, so chats and streams share entries. An abandoned
  or interrupted stream stores nothing.
- A store that fails (Redis down, a corrupt entry) is a miss with a ``CacheUnavailable``
  event: the cache never fails a call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from .._forks import renew_locks
from ..clock import Clock, SystemClock
from ..errors import ConfigurationError
from ..events import CacheHit, CacheMiss, CacheUnavailable, EventHandler
from ..flow.admission import CallReport
from ..messages import ChatChunk, ChatRequest, ChatResponse, Message, ToolCall
from ..providers.base import Provider
from ._stored import FORMAT, dump_response, load_response

__all__ = [
    "CacheFront",
    "CacheStatus",
    "CacheStore",
    "Lookup",
    "ResponseCache",
    "cache_key",
    "dump_response",
    "key_material",
    "load_response",
    "replay_chunk",
    "seconds_or_none",
]

CacheStatus = Literal["hit", "miss", "bypass"]


@runtime_checkable
class CacheStore(Protocol):
    """Where replies are kept. ``get`` and ``set`` may raise: the engine turns any error
    into a miss (and a ``CacheUnavailable`` event), so a store need not guard itself."""

    include_nonzero_temperature: bool

    def get(self, key: str) -> ChatResponse | None: ...

    def set(self, key: str, reply: ChatResponse) -> None: ...


class ResponseCache:
    """Replies in this process: least recently used first out, each for ``ttl`` seconds.

    ``max_entries`` bounds the count; ``max_bytes`` (optional) bounds the serialized size
    of all entries, since one reply may be a hundred times another. ``ttl=None`` keeps an
    entry until it is evicted. Entries are held serialized, so a caller mutating a reply
    (its tool arguments are dicts) never changes what the next hit returns. One lock
    guards the dict and is never held while (de)serializing: safe from threads and from
    any number of event loops.

    ``include_nonzero_temperature=True`` caches every request whatever its temperature,
    ``None`` included: one sampled answer is then replayed for ``ttl`` seconds.
    """

    def __init__(
        self,
        *,
        max_entries: int = 1024,
        ttl: float | timedelta | None = 300.0,
        max_bytes: int | None = None,
        clock: Clock | None = None,
        include_nonzero_temperature: bool = False,
    ) -> None:
        self.max_entries = _positive_int("ResponseCache.max_entries", max_entries)
        self.max_bytes = (
            None if max_bytes is None else _positive_int("ResponseCache.max_bytes", max_bytes)
        )
        self.ttl = seconds_or_none("ResponseCache.ttl", ttl)
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigurationError(f"ResponseCache.clock must be a Clock, got {clock!r}")
        self.clock: Clock = clock or SystemClock()
        self.include_nonzero_temperature = _flag(
            "ResponseCache.include_nonzero_temperature", include_nonzero_temperature
        )
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        renew_locks(self, "_lock")

    def get(self, key: str) -> ChatResponse | None:
        now = self.clock.now()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, payload = entry
            if now >= expires:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
        return load_response(payload)

    def set(self, key: str, reply: ChatResponse) -> None:
        payload = dump_response(reply)
        size = len(payload)
        if self.max_bytes is not None and size > self.max_bytes:
            return  # would evict everything and still not fit
        expires = math.inf if self.ttl is None else self.clock.now() + self.ttl
        with self._lock:
            self._drop(key)
            self._entries[key] = (expires, payload)
            self._bytes += size
            while len(self._entries) > self.max_entries or (
                self.max_bytes is not None and self._bytes > self.max_bytes
            ):
                self._drop(next(iter(self._entries)))

    def keys(self) -> list[str]:
        """The keys held, least recently used first (expired ones included until touched)."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])

    def __repr__(self) -> str:
        return f"ResponseCache(max_entries={self.max_entries}, ttl={self.ttl}, size={len(self)})"


# -- the key ---------------------------------------------------------------------------


def cache_key(request: ChatRequest, providers: Sequence[Provider]) -> str | None:
    """The hex SHA-256 naming ``request`` sent to these routes, or None if it cannot be
    named (a schema holding something JSON cannot write: such a request is not cached)."""
    material = key_material(request, providers)
    if material is None:
        return None
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def key_material(request: ChatRequest, providers: Sequence[Provider]) -> str | None:
    """The canonical JSON that :func:`cache_key` hashes, for inspection: what it holds is
    what distinguishes two entries."""
    material = {
        "v": FORMAT,
        "routes": [[p.kind, p.name, p.model, _public_url(p.base_url)] for p in providers],
        "messages": [
            [m.role, _content(m), [_call(c) for c in m.tool_calls], m.tool_call_id, m.name]
            for m in request.messages
        ],
        "tools": [[t.name, t.description, t.parameters] for t in request.tools],
        "tool_choice": request.tool_choice,
        "response_schema": request.response_schema,
        "json_mode": request.json_mode,
        # 0 and 0.0 ask for the same thing.
        "temperature": None if request.temperature is None else float(request.temperature),
        "max_tokens": request.max_tokens,
        "stop": list(request.stop),
        "model": request.model,
        "top_p": None if request.top_p is None else float(request.top_p),
        "seed": request.seed,
        "parallel_tool_calls": request.parallel_tool_calls,
        "reasoning_effort": request.reasoning_effort,
        "provider_options": request.provider_options,
    }
    try:
        return json.dumps(
            material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError):
        return None


def _call(call: ToolCall) -> list[Any]:
    if call.invalid:  # the text the model wrote is what is sent back
        return [call.id, call.name, {"raw_arguments": call.raw_arguments}]
    return [call.id, call.name, call.arguments, call.signature]


def _content(message: Message) -> Any:
    """A message's content for the key: its text, or each part with its bytes hashed."""
    if isinstance(message.content, str):
        return message.content
    out: list[Any] = []
    for part in message.content:
        fields = {k: v for k, v in vars(part).items() if v is not None}
        data = fields.pop("data", None)
        if isinstance(data, bytes):
            fields["sha256"] = hashlib.sha256(data).hexdigest()
        out.append([part.kind, fields])
    return out


def _public_url(url: str | None) -> str | None:
    """The base URL minus user info, query and fragment, where credentials may hide."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


# -- the engine's side -------------------------------------------------------------------


@dataclass(frozen=True)
class Lookup:
    """What the cache said about one call: its key (None if not cacheable), the reply on a
    hit, and the status the reply's ``metadata["cache"]`` will carry."""

    status: CacheStatus
    key: str | None = None
    reply: ChatResponse | None = None


class CacheFront:
    """The engine's use of a :class:`CacheStore`: policy, keys, events and metadata.

    Kept apart from the stores so that a store is only a dict with an expiry, and every
    store gets the same temperature rule, the same degradation to a miss and the same
    events.
    """

    def __init__(
        self,
        store: CacheStore,
        providers: Sequence[Provider],
        emit: EventHandler,
        now: Callable[[], float],
    ) -> None:
        self.store = store
        self._providers = tuple(providers)
        self._emit = emit
        self._now = now

    def lookup(self, request: ChatRequest) -> Lookup:
        temperature = request.temperature
        if not self.store.include_nonzero_temperature and (temperature is None or temperature):
            return Lookup("bypass")
        key = cache_key(request, self._providers)
        if key is None:
            return Lookup("bypass")
        try:
            stored = self.store.get(key)
        except Exception as exc:
            self._emit(CacheUnavailable("cache", self._now(), type(exc).__name__, "get"))
            return Lookup("miss", key)
        if stored is None:
            self._emit(CacheMiss("cache", self._now()))
            return Lookup("miss", key)
        self._emit(CacheHit("cache", self._now(), stored.provider))
        return Lookup("hit", key, dataclasses.replace(stored, metadata=_hit_metadata(stored)))

    def remember(self, lookup: Lookup, reply: ChatResponse) -> ChatResponse:
        """Store ``reply`` if the lookup missed; return it marked with the cache status."""
        if lookup.status == "miss" and lookup.key is not None:
            # The call's history and quota (headers and hints) describe that call and the
            # provider's quota then, not the answer; the provider's own metadata (a
            # completion id...) stays with the answer.
            report = CallReport().metadata().keys()
            kept = dataclasses.replace(
                reply,
                metadata={
                    k: v for k, v in reply.metadata.items() if k not in report and k != "cache"
                },
                rate_limit_headers={},
                quota=None,
            )
            try:
                self.store.set(lookup.key, kept)
            except Exception as exc:
                self._emit(CacheUnavailable("cache", self._now(), type(exc).__name__, "set"))
        return dataclasses.replace(reply, metadata={**reply.metadata, "cache": lookup.status})


def _hit_metadata(stored: ChatResponse) -> dict[str, Any]:
    # The report of a call that made no attempt, so code reading metadata needs no special
    # case for a hit.
    report = CallReport(route=stored.provider).metadata()
    return {**stored.metadata, **report, "cache": "hit"}


def replay_chunk(reply: ChatResponse) -> ChatChunk:
    """A hit served to a stream: the whole reply in one chunk."""
    return ChatChunk(
        delta=reply.content,
        provider=reply.provider,
        model=reply.model,
        tool_calls=reply.tool_calls,
        usage=reply.usage,
        finish_reason=reply.finish_reason,
        metadata=reply.metadata,
        refusal=reply.refusal,
        reasoning=reply.reasoning,
    )


# -- validation ----------------------------------------------------------------------------


def seconds_or_none(name: str, value: object) -> float | None:
    """A positive finite number of seconds (a ``timedelta`` too), or None."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise ConfigurationError(
            f"{name} must be a positive number of seconds, a timedelta or None, got {value!r}"
        )
    return float(seconds)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a bool, got {value!r}")
    return value
