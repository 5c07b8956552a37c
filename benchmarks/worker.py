"""One system in one process: ``python -m benchmarks.worker run|cold ...``.

``run SCENARIO SYSTEM SETUP_JSON QUICK``: build the system, warm up, print ``READY``, wait
for ``GO <monotonic seconds>`` on stdin (the orchestrator resets the chaos plans in
between), run the scenario and print ``RESULT <json>``. An interleaved scenario is driven
instead by ``STEP <json>`` commands, each answered ``DONE <json>``, then ``END``.

``cold SYSTEM SETUP_JSON``: time the system's import statements, then building it and its
first reply, in this fresh process; print ``RESULT <json>``.

``profile SYSTEM SETUP_JSON seq|conc``: see ``hotspots.py``.

``memory SYSTEM SETUP_JSON MARKS``: RSS after each mark's number of calls; see ``memory.py``.

Only the standard library is imported before the system's own imports, and every socket is
held to loopback (``loopback.guard``).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

from . import loopback
from .spec import PROMPT, Setup, is_answer
from .systems import IMPORTS, build, quiet_litellm


def _emit(tag: str, payload: dict[str, Any] | None = None) -> None:
    line = tag if payload is None else f"{tag} {json.dumps(payload)}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(scenario_name: str, system_name: str, setup_json: str, quick: bool) -> dict[str, Any]:
    from .scenarios import SCENARIOS

    scenario = SCENARIOS[scenario_name]
    setup = Setup.from_json(setup_json)
    system = build(system_name, setup)
    scenario.prepare(system, setup, quick)
    _emit("READY")
    while True:
        command, _, argument = sys.stdin.readline().strip().partition(" ")
        if command == "GO":
            result = scenario.work(system, setup, quick, float(argument))
            break
        if command == "STEP":
            _emit("DONE", scenario.step(system, setup, json.loads(argument)))  # type: ignore[attr-defined]
            continue
        if command == "END":
            result = {}
            break
        raise SystemExit(f"worker: expected GO, STEP or END, got {command!r}")
    system.close()
    return result


def cold(system_name: str, setup_json: str) -> dict[str, Any]:
    quiet_litellm()
    started = time.perf_counter()
    exec(IMPORTS[system_name], {})
    imported = time.perf_counter()
    system = build(system_name, Setup.from_json(setup_json))
    reply = system.call(PROMPT, 64)
    answered = time.perf_counter()
    system.close()
    return {
        "import_s": imported - started,
        "cold_s": answered - started,
        "ok": is_answer(reply),
    }


def main(argv: list[str]) -> None:
    loopback.guard()
    mode, *args = argv
    if mode == "run":
        scenario_name, system_name, setup_json, quick = args
        result = run(scenario_name, system_name, setup_json, quick == "1")
    elif mode == "cold":
        result = cold(*args)
    elif mode == "memory":
        from .memory import memory_here

        result = memory_here(*args)
    elif mode == "profile":
        from .hotspots import profile_here

        result = dict(profile_here(*args))
    else:
        raise SystemExit(f"worker: unknown mode {mode!r}")
    result["rss_mb"] = _peak_rss_mb()
    result["cpu_s"] = time.process_time()
    result["blocked"] = loopback.blocked()
    _emit("RESULT", result)


if __name__ == "__main__":
    main(sys.argv[1:])
