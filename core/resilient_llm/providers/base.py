"""What a provider is, and what every provider adapter does.

:class:`Provider` is the user's description of one route: which SDK family, which model,
optionally a key, a ``base_url`` (any OpenAI-compatible service: OpenRouter, Groq, xAI,
vLLM, Ollama) and a route name. :class:`ChatAdapter` is the interface the engine drives;
one implementation per SDK lives beside this module and is imported only when a route of
that family is built, so an application that never uses Gemini never imports google-genai.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlparse

from .._arguments import timeout_setting
from ..errors import ConfigurationError
from ..messages import ChatRequest
from ..policies.capabilities import Capabilities
from ..policies.limiter import RateLimit
from ..secrets import Secret
from ._model_strings import parse_model
from ._protocol import ChatAdapter
from ._spec import ProviderSpec
from .registry import SPECS, provider_spec

__all__ = [
    "ENV_BASE_URLS",
    "ENV_KEYS",
    "OFFICIAL_HOSTS",
    "ChatAdapter",
    "PerKind",
    "Provider",
    "ProviderKind",
    "distinct_names",
    "rate_limit_headers",
    "unsendable_reason",
]

# The built-in kinds, as a type for editors; the set is open: register_provider adds kinds.
ProviderKind = Literal["openai", "anthropic", "gemini"]

_V = TypeVar("_V")


class PerKind(Mapping[str, _V]):
    """A read-only view of one spec field over the kinds that set it, built-in and registered
    (``ENV_KEYS``, ``OFFICIAL_HOSTS``, telemetry's ``GEN_AI_PROVIDER``)."""

    def __init__(self, read: Callable[[ProviderSpec], _V | None]) -> None:
        self._read = read

    def _items(self) -> dict[str, _V]:
        found = ((kind, self._read(spec)) for kind, spec in SPECS.items())
        return {kind: value for kind, value in found if value}

    def __getitem__(self, kind: str) -> _V:
        return self._items()[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return repr(self._items())


# Where a key is looked up when the Provider gives none, in order.
ENV_KEYS: Mapping[str, tuple[str, ...]] = PerKind(lambda spec: spec.env_keys)

# Where an environment key may be sent: the family's own API host (https, default port),
# and the base URL its SDK reads from the environment next to that key, which the
# operator who set the key chose too. Any other base_url gets no environment key.
OFFICIAL_HOSTS: Mapping[str, str] = PerKind(lambda spec: spec.official_host)
ENV_BASE_URLS: Mapping[str, str] = PerKind(lambda spec: spec.env_base_url)

_HINT_HEADERS = ("retry-after", "retry-after-ms", "x-ratelimit-", "anthropic-ratelimit-")


@dataclass(frozen=True, init=False, repr=False)
class Provider:
    """One route: an SDK family, a model, and how to reach it.

    ``name`` is what events, snapshots and replies call the route, unique among an
    engine's providers. Without one, the engine names the first route of a kind after the
    kind (``"openai"``) and a later route of the same kind ``"kind:model"``
    (``"openai:gpt-4o-mini"``); see :func:`distinct_names`. ``timeout`` bounds one attempt.
    ``capabilities`` overrides what the built-in table says the model can take.
    ``max_concurrency`` bounds this process's calls in flight on the route; later calls
    queue in order (within their deadline) rather than pile onto a slow provider.

    ``options`` holds per-family settings. ``options["async_transport"]`` picks the HTTP
    stack of the ``openai`` and ``anthropic`` async clients: ``"aiohttp"`` (the default,
    used where the installed SDK offers it) or ``"httpx"`` (the SDK's own default, slower
    under load). google-genai picks its own (aiohttp when installed), so a Gemini route
    takes no such option.
    """

    kind: str
    model: str
    name: str
    api_key: Secret | None
    base_url: str | None
    rate_limit: RateLimit | None
    timeout: float | None
    options: Mapping[str, object] = field(default_factory=dict)
    capabilities: Capabilities | None = None
    max_concurrency: int | None = None

    def __init__(
        self,
        kind: ProviderKind | str,
        model: str,
        *,
        name: str | None = None,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        rate_limit: RateLimit | None = None,
        timeout: float | None = None,
        options: Mapping[str, object] | None = None,
        capabilities: Capabilities | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        provider_spec(kind)  # a ConfigurationError listing the known kinds
        if not isinstance(model, str) or not model.strip():
            raise ConfigurationError(f"Provider.model must be a non-empty str, got {model!r}")
        route = kind if name is None else name
        if not isinstance(route, str) or not route.strip():
            raise ConfigurationError(f"Provider.name must be a non-empty str, got {name!r}")
        if base_url is not None and not _is_http_url(base_url):
            raise ConfigurationError(f"Provider.base_url must be an http(s) URL, got {base_url!r}")
        if api_key is not None and not isinstance(api_key, str | Secret):
            raise ConfigurationError(
                f"Provider.api_key must be a str or a Secret, got {type(api_key).__name__}"
            )
        if options is not None and not isinstance(options, Mapping):
            raise ConfigurationError(
                f"Provider.options must be a dict, got {type(options).__name__}"
            )
        if options is not None:
            _check_async_transport(kind, options)
        if timeout is not None:
            timeout = timeout_setting("Provider.timeout", timeout)
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise ConfigurationError(
                f"Provider.rate_limit must be a RateLimit, got {type(rate_limit).__name__}"
            )
        if capabilities is not None and not isinstance(capabilities, Capabilities):
            raise ConfigurationError(
                f"Provider.capabilities must be a Capabilities, got {type(capabilities).__name__}"
            )
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ConfigurationError(
                f"Provider.max_concurrency must be an int >= 1 or None, got {max_concurrency!r}"
            )
        key = Secret(api_key) if isinstance(api_key, str) else api_key
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "name", route)
        object.__setattr__(self, "api_key", key)
        object.__setattr__(self, "base_url", base_url)
        object.__setattr__(self, "rate_limit", rate_limit)
        object.__setattr__(self, "timeout", None if timeout is None else float(timeout))
        object.__setattr__(self, "options", dict(options or {}))
        object.__setattr__(self, "capabilities", capabilities)
        object.__setattr__(self, "max_concurrency", max_concurrency)
        # Not a field: whether the caller chose the name, so an engine may derive another.
        object.__setattr__(self, "_named", name is not None)

    @classmethod
    def parse(cls, model: str, **options: Any) -> Provider:
        """The route a model string names: ``"openai:gpt-4o-mini"``,
        ``"anthropic:claude-haiku-4-5"``, ``"google_genai:gemini-2.5-flash"`` (LangChain's
        ``init_chat_model`` prefixes), ``"gemini/gemini-2.5-flash"`` (LiteLLM's form), a
        registered kind, or a bare model name whose family is plain (``"gpt-4o"``).
        ``options`` are ``Provider``'s other keywords. An unknown prefix raises
        ``ConfigurationError`` listing the known ones.
        """
        kind, name = parse_model(model)
        return cls(kind, name, **options)

    @property
    def named(self) -> bool:
        """Whether the caller gave this route its name (else it was derived)."""
        return bool(self.__dict__.get("_named", True))

    def renamed(self, name: str) -> Provider:
        """This route under another (derived) name; everything else, the key included, kept."""
        copy = object.__new__(Provider)
        copy.__dict__.update(self.__dict__)
        object.__setattr__(copy, "name", name)
        return copy

    def resolve_key(self, environ: Mapping[str, str] | None = None) -> Secret | None:
        """The key to use: the one given, else the family's environment variable when the
        route goes to the family's own endpoint (see :meth:`takes_env_key`), else None."""
        if self.api_key is not None:
            return self.api_key
        env = os.environ if environ is None else environ
        if not self.takes_env_key(env):
            return None
        for variable in provider_spec(self.kind).env_keys:
            value = env.get(variable)
            if value:
                return Secret(value)
        return None

    def takes_env_key(self, environ: Mapping[str, str] | None = None) -> bool:
        """Whether an environment key may go to this route's endpoint.

        True without a ``base_url`` (the SDK's default endpoint, or the one its own
        environment variable names), for an https ``base_url`` on the family's official
        host (``api.openai.com``, ``api.anthropic.com``,
        ``generativelanguage.googleapis.com``), and for a ``base_url`` equal to the one in
        the family's environment variable (``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``,
        ``GOOGLE_GEMINI_BASE_URL``). Any other ``base_url`` (OpenRouter, Groq, a proxy, a
        local server) gets only the key given to this ``Provider``: ``OPENAI_API_KEY``
        is never sent to a third party.
        """
        if self.base_url is None:
            return True
        spec = provider_spec(self.kind)
        url = _endpoint(self.base_url)
        if url is not None and url[:3] == ("https", spec.official_host, 443):
            return True
        env = os.environ if environ is None else environ
        configured = env.get(spec.env_base_url) if spec.env_base_url else None
        return url is not None and bool(configured) and _endpoint(str(configured)) == url

    def __repr__(self) -> str:
        parts = [repr(self.kind), f"model={self.model!r}"]
        if self.name != self.kind:
            parts.append(f"name={self.name!r}")
        if self.base_url is not None:
            parts.append(f"base_url={self.base_url!r}")
        if self.api_key is not None:
            parts.append("api_key='***'")
        if self.rate_limit is not None:
            parts.append(f"rate_limit={self.rate_limit!r}")
        return f"Provider({', '.join(parts)})"


def distinct_names(providers: Sequence[Provider], owner: str) -> list[Provider]:
    """``providers`` with a distinct name each, or a ``ConfigurationError`` naming a clash.

    A name the caller gave is kept. A route without one is called after its kind when no
    other route has that name yet (one route per kind keeps ``"openai"``, ``"anthropic"``,
    ``"gemini"``), else ``"kind:model"``, so ``[Provider("openai", "gpt-4o"),
    Provider("openai", "gpt-4o-mini")]`` are ``"openai"`` and ``"openai:gpt-4o-mini"``.
    Two routes that still share a name (given twice, or the same kind and model twice
    without names) are refused: events and snapshots could not tell them apart.
    """
    holders: dict[str, int] = {}
    for index, provider in enumerate(providers):
        if provider.named:
            _claim(holders, provider.name, index, providers, owner)
    derived: dict[str, int] = {}
    named: list[Provider] = []
    for index, provider in enumerate(providers):
        if not provider.named:
            # The same kind and model twice is a clash even though "kind" and "kind:model"
            # would tell them apart: neither name would say which route is which.
            long_name = f"{provider.kind}:{provider.model}"
            _claim(derived, long_name, index, providers, owner, "would both be named")
            name = provider.kind if provider.kind not in holders else long_name
            _claim(holders, name, index, providers, owner)
            provider = provider if name == provider.name else provider.renamed(name)
        named.append(provider)
    return named


def _claim(
    holders: dict[str, int],
    name: str,
    index: int,
    providers: Sequence[Provider],
    owner: str,
    clash: str = "are both named",
) -> None:
    first = holders.setdefault(name, index)
    if first != index:
        raise ConfigurationError(
            f"{owner}[{first}] {providers[first]!r} and {owner}[{index}] "
            f"{providers[index]!r} {clash} {name!r}: give one its own Provider(name=...)"
        )


_ASYNC_TRANSPORTS = ("aiohttp", "httpx")


def _check_async_transport(kind: str, options: Mapping[str, object]) -> None:
    if "async_transport" not in options:
        return
    value = options["async_transport"]
    if not provider_spec(kind).async_transport:
        takers = " and ".join(repr(k) for k, spec in SPECS.items() if spec.async_transport)
        raise ConfigurationError(
            f"Provider.options['async_transport'] is for kinds {takers} only; "
            f"{kind!r} picks its own async transport"
        )
    if not isinstance(value, str) or value not in _ASYNC_TRANSPORTS:
        raise ConfigurationError(
            f"Provider.options['async_transport'] must be one of {list(_ASYNC_TRANSPORTS)}, "
            f"got {value!r}"
        )


def _endpoint(url: str) -> tuple[str, str, int, str] | None:
    """``url`` as (scheme, host, port, path) for comparing endpoints, or None if invalid."""
    try:
        parsed = urlparse(url.strip())
        port = parsed.port
    except ValueError:
        return None
    scheme, host = parsed.scheme.lower(), (parsed.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host:
        return None
    default = 443 if scheme == "https" else 80
    return scheme, host, port or default, parsed.path.rstrip("/")


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parsed = urlparse(value)
    try:
        parsed.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)


def rate_limit_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The quota and retry headers of a response, lower-cased; nothing else (no auth)."""
    if not headers:
        return {}
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith(_HINT_HEADERS)}


def unsendable_reason(
    kind: str, request: ChatRequest, provider: Provider | None = None
) -> str | None:
    """Why a route of family ``kind`` cannot carry ``request`` faithfully, or None.

    Each kind's spec says (``ProviderSpec.unsendable``): the Anthropic and Gemini
    protocols take only an object as a tool call's arguments, so a history holding an
    invalid call skips them. Such a route is skipped for the request, with this reason.
    """
    spec = provider_spec(kind)
    reason = None if spec.unsendable is None else spec.unsendable(request)
    if reason is None and provider is not None and spec.unsendable_to is not None:
        reason = spec.unsendable_to(request, provider)
    return reason
