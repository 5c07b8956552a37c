"""A limiter's record of one window: entries per admission (short windows) or per slice
(long ones), and the earliest time a request fits (see :mod:`resilient_llm.policies.limiter`)."""

from __future__ import annotations

import math
from collections import deque

from .rate_limit import DIMENSIONS, Window

__all__ = ["EXACT_UP_TO", "SLICES", "Entry", "Lane"]

EXACT_UP_TO = 3600.0
"""Windows up to an hour keep an entry per admission; longer ones one per slice."""
SLICES = 240
"""Entries kept per long window (a day: one per six minutes, 0.4 % of it left unused)."""


class Entry:
    """What one lane counts from ``start``: one admission, or a slice's worth of them."""

    __slots__ = ("amounts", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        # requests, tokens, input tokens, output tokens
        self.amounts = [0, 0, 0, 0]


class Lane:
    """One window's entries, in ``start`` order."""

    __slots__ = ("entries", "slice", "window")

    def __init__(self, window: Window) -> None:
        self.window = window
        self.slice = 0.0 if window.seconds <= EXACT_UP_TO else window.seconds / SLICES
        self.entries: deque[Entry] = deque()

    def entry_for(self, at: float) -> Entry:
        if self.slice:
            start = math.ceil(at / self.slice) * self.slice
            if self.entries and self.entries[-1].start == start:
                return self.entries[-1]
        else:
            start = at
        made = Entry(start)
        if self.entries and start < self.entries[-1].start:
            # Only :meth:`Limiter.note` admits out of order.
            ordered = sorted([*self.entries, made], key=lambda e: e.start)
            self.entries = deque(ordered)
        else:
            self.entries.append(made)
        return made

    def prune(self, now: float, extra: float) -> float:
        """Drop entries that stopped counting by ``now``; when the last of them stopped."""
        span = self.window.seconds + extra
        stopped = -math.inf
        entries = self.entries
        while entries and entries[0].start + span <= now:
            stopped = entries.popleft().start + span
        return stopped

    def earliest(self, at: float, need: list[int], limits: Window, extra: float) -> float:
        """The earliest time from ``at`` at which ``need`` fits every limit of this lane."""
        span = self.window.seconds + extra
        # A list: a deque's index is slow away from its ends.
        entries = list(self.entries)
        first = 0
        while first < len(entries) and entries[first].start + span <= at:
            first += 1
        for d, name in enumerate(DIMENSIONS):
            limit = getattr(limits, name)
            if limit is None:
                continue
            # A request bigger than a share waits until it has the share to itself.
            limit = max(limit, need[d])
            used = sum(entries[i].amounts[d] for i in range(first, len(entries)))
            f = first
            # Terminates: need <= limit, so the sum fits once the entries are passed.
            while used + need[d] > limit:
                # Comparisons use ``start + span`` exactly as assigned here, so an entry
                # leaves at the very float ``at`` moves to.
                at = max(at, entries[f].start + span)
                used -= entries[f].amounts[d]
                f += 1
        return at

    def free_at(self, now: float, limits: Window, extra: float) -> float:
        """When a request of one request and no tokens fits by this lane alone."""
        return self.earliest(now, [1, 0, 0, 0], limits, extra)

    def used(self, now: float, extra: float) -> list[int]:
        span = self.window.seconds + extra
        total = [0, 0, 0, 0]
        for e in self.entries:
            if e.start + span > now:
                for d in range(4):
                    total[d] += e.amounts[d]
        return total
