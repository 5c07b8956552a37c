"""A point-in-time picture of every route: limiter, breaker, pause and health.

``str(snapshot)`` is the table the demo prints; ``to_dict()`` is plain data for logs,
dashboards and JSON. Neither holds a key: routes are known by name only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .memory import RouteSnapshot

__all__ = ["Snapshot"]

_COLUMNS = (
    ("route", 12),
    ("breaker", 10),
    ("requests used", 14),
    ("est. tokens", 12),
    ("queue", 6),
    ("refill (s)", 11),
    ("paused (s)", 11),
)


@dataclass(frozen=True)
class Snapshot:
    routes: tuple[RouteSnapshot, ...]

    def __getitem__(self, name: str) -> RouteSnapshot:
        for route in self.routes:
            if route.name == name:
                return route
        raise KeyError(name)

    def __iter__(self) -> Iterator[RouteSnapshot]:
        return iter(self.routes)

    def to_dict(self) -> dict[str, Any]:
        return {route.name: dataclasses.asdict(route) for route in self.routes}

    def __str__(self) -> str:
        # The route column grows to the longest name, so no name runs into the next column.
        widest = max((len(r.name) for r in self.routes), default=0) + 2
        columns = ((_COLUMNS[0][0], max(_COLUMNS[0][1], widest)), *_COLUMNS[1:])
        header = "".join(title.ljust(width) for title, width in columns)
        lines = [header.rstrip(), "-" * len(header.rstrip())]
        for r in self.routes:
            rpm = r.limiter.requests_per_minute
            used = f"{r.limiter.requests_used}" + (f"/{rpm}" if rpm else "")
            state = "disabled" if r.disabled else r.breaker.state.value
            cells = (
                r.name,
                state,
                used,
                str(r.limiter.estimated_tokens),
                str(r.limiter.queue_length),
                f"{r.limiter.refill_time:.1f}",
                f"{r.paused_for:.1f}",
            )
            lines.append(
                "".join(c.ljust(w) for c, (_, w) in zip(cells, columns, strict=True)).rstrip()
            )
        return "\n".join(lines)
