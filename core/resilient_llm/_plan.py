"""What one call needs to know per route before the flow runs, each fact computed lazily.

A call answered by its first route never estimates its tokens for the others: estimates,
reasons a route cannot take the request and usage ceilings are computed per route when the
flow first asks for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar, overload

from .messages import ChatRequest
from .policies.capabilities import Capabilities, Unfit, turn_reason, unfit_reason
from .policies.quota import Tokens
from .policies.tokens import estimate_tokens, reserved_output, usage_ceiling, within
from .providers.base import Provider, unsendable_reason
from .providers.registry import provider_spec

__all__ = ["RouteFacts"]

_T = TypeVar("_T")


class RouteFacts:
    """Per route (in the call's order): the request's token estimate for its model, why
    it cannot take the request (None if it can), and the most tokens a reply may settle."""

    def __init__(
        self,
        request: ChatRequest,
        providers: Sequence[Provider],
        caps: Sequence[Capabilities],
        models: Sequence[str],
    ) -> None:
        size = len(providers)
        # The closures see locals, never ``self``: a cycle through them would keep each
        # call's request alive until the garbage collector came round.
        estimates = _PerRoute(size, lambda i: _split_estimate(request, models[i]))

        def window_estimate(i: int) -> int:
            # Only a known context window is checked against the estimate, and a request
            # that fits it by its length alone is not counted for it.
            window = caps[i].context_window
            return 0 if window is None or within(request, window) else estimates[i]

        self.estimates = estimates
        self.unfit = _PerRoute(
            size,
            lambda i: (
                turn_reason(
                    providers[i].kind, request, provider_spec(providers[i].kind).needs_a_turn
                )
                or unfit_reason(caps[i], request, window_estimate(i))
                or _unsendable(providers[i], request)
            ),
        )
        self.ceilings = _PerRoute(
            size,
            lambda i: usage_ceiling(
                request,
                estimates[i],
                context_window=caps[i].context_window,
                max_output=caps[i].max_output,
            ),
        )


class _PerRoute(Sequence[_T]):
    """A value per route, computed when first asked for."""

    def __init__(self, size: int, compute: Callable[[int], _T]) -> None:
        self._size = size
        self._compute = compute
        self._known: dict[int, _T] = {}

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, index: int) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[_T]: ...

    def __getitem__(self, index: int | slice) -> _T | Sequence[_T]:
        if isinstance(index, slice):
            return [self[i] for i in range(self._size)[index]]
        if not 0 <= index < self._size:
            raise IndexError(index)
        if index not in self._known:
            self._known[index] = self._compute(index)
        return self._known[index]


def _unsendable(provider: Provider, request: ChatRequest) -> Unfit | None:
    reason = unsendable_reason(provider.kind, request, provider)
    return None if reason is None else Unfit(reason)


def _split_estimate(request: ChatRequest, model: str) -> int:
    """The estimate with its split: the prompt, and the output allowance it reserves (what
    a route with input- and output-token limits charges each)."""
    total = estimate_tokens(request, model=model)
    output = min(total, reserved_output(request))
    return Tokens(total, input=total - output, output=output)
