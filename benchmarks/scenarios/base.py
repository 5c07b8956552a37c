"""What every scenario module provides (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..spec import Hit, Setup
from ..systems import System

__all__ = ["Column", "Scenario"]


@dataclass(frozen=True)
class Column:
    """A table column: metric key, header, format (``{:.1f}``...), and whether lower is
    better (for marking the best figure); ``missing`` is shown when no run had a figure."""

    key: str
    header: str
    fmt: str
    lower_is_better: bool | None = None
    missing: str = "—"


class Scenario(Protocol):
    NAME: str
    TITLE: str
    SIDE_BY_SIDE: frozenset[str]
    SPREAD_REPS: bool
    INTERLEAVED: bool
    COLUMNS: list[Column]

    def plans(self, quick: bool) -> dict[str, dict[str, Any]]: ...

    def setup(self, quick: bool) -> Setup: ...

    def prepare(self, system: System, setup: Setup, quick: bool) -> None: ...

    def work(self, system: System, setup: Setup, quick: bool, go: float) -> dict[str, Any]: ...

    def measure(self, result: dict[str, Any], hits: list[Hit], quick: bool) -> dict[str, Any]: ...
