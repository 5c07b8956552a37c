"""Sync calls are bounded by their deadline however the bytes arrive.

A provider that trickles its reply a byte at a time keeps every per-read timeout of the
SDKs from firing; the engine's sync transport bounds the reads of an attempt by the time
it has left, so the call ends at its deadline, and its connection is let go of (the
chaos server sees the client leave long before the trickle would have ended).
"""

from __future__ import annotations

import pytest

from resilient_llm import DeadlineExceeded, ResilientLLM
from resilient_llm.testing.chaos import Fault

from .conftest import KINDS, RETRY, Bench, eventually

# A byte every 0.2 s: the whole reply would take over a minute.
TRICKLE = Fault("trickle", delay=0.2)


@pytest.mark.parametrize("mode", ["chat", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_trickle_ends_at_the_deadline(bench: Bench, kind: str, mode: str) -> None:
    primary = bench.route(kind, "trickle")
    bench.script(primary, TRICKLE)
    llm = ResilientLLM([primary], retry=RETRY, timeout=1.5)
    bench.engines.append(llm)
    with pytest.raises(DeadlineExceeded):
        bench.run(llm, mode)
    # The server's handler ended: the client went away, the trickle did not run its course.
    assert eventually(lambda: len(bench.calls()) == 1, timeout=10.0)
    assert bench.calls() == [(primary.name, 200, "trickle")]
