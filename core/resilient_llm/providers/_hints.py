"""A response's quota headers, parsed once, where the response is read.

Replies carry the result as ``quota`` (errors as ``retry_after``), so nothing downstream
parses headers again. Anthropic's resets are wall-clock instants: this is the one place a
provider's headers meet the wall clock, which turns them into waits from now.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from ..policies.hints import HINTED, RateLimitHints, hints_from_headers

__all__ = ["quota_hints"]


def quota_hints(headers: Mapping[str, str] | None) -> RateLimitHints | None:
    """The rate-limit hints in ``headers``, or None when they hold none."""
    if not headers or not any(str(name).lower().startswith(HINTED) for name in headers):
        # Most replies carry no quota header at all: nothing to parse, no clock to read.
        return None
    hints = hints_from_headers(headers, wall_now=time.time())
    return None if hints.empty else hints
