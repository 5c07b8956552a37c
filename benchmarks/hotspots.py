"""Where a system's per-call time goes: ``python -m benchmarks.hotspots [SYSTEM ...]``.

The overhead scenario's two loops (sequential sync calls; async calls 100 at a time) run
under pyinstrument in a worker process, against a healthy chaos server here, after a
warm-up. Written to ``results/profile-<system>-<loop>.txt``: the functions with the most
self time (flat, % of the profiled time), then the call tree. Used when a target is
missed, to say what in ``resilient_llm`` is slow.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from .spec import PROMPT, Setup
from .systems import build

__all__ = ["main", "profile_here"]

_OUT = Path(__file__).resolve().parent / "results"
_CALLS = {"seq": 2_000, "conc": 3_000}


def profile_here(system_name: str, setup_json: str, loop: str) -> dict[str, str]:
    """Worker side: profile one loop of ``system_name``; returns the report's path."""
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

    setup = Setup.from_json(setup_json)
    system = build(system_name, setup)
    # Wall-clock samples of what runs, not of awaiting tasks: the question is CPU per call.
    profiler = Profiler(interval=0.0002, async_mode="disabled")
    calls = _CALLS[loop]
    if loop == "seq":
        for _ in range(50):
            system.call(PROMPT, setup.max_tokens)
        profiler.start()
        for _ in range(calls):
            system.call(PROMPT, setup.max_tokens)
        profiler.stop()
    else:

        async def concurrent() -> None:
            async def drain(counter: object) -> None:
                for _ in counter:  # type: ignore[attr-defined]
                    await system.acall(PROMPT, setup.max_tokens)

            await asyncio.gather(*(drain(iter(range(2))) for _ in range(100)))
            counter = iter(range(calls))
            profiler.start()
            await asyncio.gather(*(drain(counter) for _ in range(100)))
            profiler.stop()

        asyncio.run(concurrent())
    system.close()
    flat = profiler.output(
        ConsoleRenderer(flat=True, time="percent_of_total", show_all=True, short_mode=True)
    )
    tree = profiler.output(ConsoleRenderer(time="percent_of_total", short_mode=True))
    path = _OUT / f"profile-{system_name}-{loop}.txt"
    path.write_text(
        f"{system_name}, {loop} loop, {calls} calls\n\n"
        "== self time by function (% of profiled time) ==\n"
        + "\n".join(flat.splitlines()[:60])
        + "\n\n== call tree ==\n"
        + tree
    )
    return {"path": str(path)}


def main(argv: list[str]) -> None:
    from resilient_llm.testing.chaos import ChaosServer

    from .harness import one_shot
    from .scenarios import overhead

    systems = argv or ["raw", "engine", "lc_resilient"]
    _OUT.mkdir(parents=True, exist_ok=True)
    with ChaosServer() as server:
        urls = {name: server.base_url(name) for name in ("openai", "anthropic", "gemini")}
        setup = overhead.setup(quick=False).with_urls(urls)
        for system in systems:
            for loop in ("seq", "conc"):
                result = one_shot(["profile", system, setup.to_json(), loop])
                print(result["path"], flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
