"""The provider kinds an engine can build: built-in ones and those a user registers.

``Provider(kind)`` is checked here, and every per-kind fact the engine uses (environment
keys, quota accounting, telemetry names, what a family cannot send) is read from the kind's
:class:`~resilient_llm.providers.ProviderSpec`, so a new kind is one folder and one
:func:`register_provider` call.
"""

from __future__ import annotations

from types import MappingProxyType

from ..errors import ConfigurationError
from ._spec import ProviderSpec

__all__ = ["known_kinds", "provider_spec", "register_provider"]

# Filled by the package as it loads (``providers/__init__``), which imports every kind's
# folder: the registry itself imports none, so no kind's adapter leads back here.
_BUILT_IN: dict[str, ProviderSpec] = {}
_SPECS: dict[str, ProviderSpec] = {}
SPECS = MappingProxyType(_SPECS)


def built_in(kind: str, spec: ProviderSpec) -> None:
    """Register one of the package's own kinds (they cannot be replaced later)."""
    _BUILT_IN[kind] = _SPECS[kind] = spec


def register_provider(kind: str, spec: ProviderSpec) -> None:
    """Make ``kind`` a provider kind: ``Provider(kind, ...)`` then builds ``spec.adapter``.

    Registering a kind again replaces its spec (a test or a reload); a built-in kind cannot
    be replaced (use ``ResilientLLM(adapter_factory=...)`` to change how one is built).
    """
    if not isinstance(kind, str) or not kind.strip() or kind != kind.strip():
        raise ConfigurationError(f"a provider kind must be a non-empty str, got {kind!r}")
    if not isinstance(spec, ProviderSpec):
        raise ConfigurationError(f"register_provider takes a ProviderSpec, got {spec!r}")
    if kind in _BUILT_IN:
        raise ConfigurationError(f"{kind!r} is a built-in provider kind")
    _SPECS[kind] = spec


def _unregister(kind: str) -> None:
    """Forget a registered kind (tests); built-in kinds stay."""
    if kind not in _BUILT_IN:
        _SPECS.pop(kind, None)


def known_kinds() -> tuple[str, ...]:
    """Every kind ``Provider`` takes now, built-in ones first."""
    return tuple(_SPECS)


def provider_spec(kind: str) -> ProviderSpec:
    """The spec of ``kind``; ``ConfigurationError`` listing the known kinds if there is none."""
    spec = _SPECS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise ConfigurationError(
            f"Provider.kind must be one of {list(_SPECS)}, got {kind!r} "
            "(any OpenAI-compatible service is kind 'openai' with a base_url; "
            "register_provider() adds a kind)"
        )
    return spec
