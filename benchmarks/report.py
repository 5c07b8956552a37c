"""``results/latest.json`` -> ``results/latest.md`` and its plots.

``python -m benchmarks.report`` re-renders the last run without running anything. Every
figure in a table is the median over the run's repetitions; ratios were taken within each
repetition first. The best figure of each column among the resilience layers is in bold
(the raw SDK is the floor, not a contender).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from . import plots
from .scenarios import SCENARIOS, Column
from .spec import Policy
from .stats import median
from .systems import CONFIGURATION, LABELS

__all__ = ["render"]

Runs = dict[str, list[dict[str, Any]]]


def _value(runs: Runs, system: str, key: str) -> float | None:
    if system not in runs:
        return None
    return median(run.get(key) for run in runs[system])


def _text(value: float | None, column: Column) -> str:
    if value is None or math.isnan(value):
        return column.missing
    if math.isinf(value):
        return "∞"
    return column.fmt.format(value)


def _table(runs: Runs, systems: list[str], columns: list[Column]) -> list[str]:
    values = {s: {c.key: _value(runs, s, c.key) for c in columns} for s in systems}
    best: dict[str, float] = {}
    for column in columns:
        if column.lower_is_better is None:
            continue
        contenders = [
            v
            for s in systems
            if s != "raw" and (v := values[s][column.key]) is not None and not math.isnan(v)
        ]
        if contenders:
            best[column.key] = min(contenders) if column.lower_is_better else max(contenders)
    lines = [
        "| system | " + " | ".join(c.header for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for system in systems:
        cells = []
        for column in columns:
            value = values[system][column.key]
            cell = _text(value, column)
            if system != "raw" and value is not None and value == best.get(column.key):
                cell = f"**{cell}**"
            cells.append(cell)
        lines.append(f"| {LABELS[system]} | " + " | ".join(cells) + " |")
    return lines


HEADLINE = [
    ("overhead", Column("seq_ratio", "sequential x raw", "{:.2f}", True)),
    ("overhead", Column("conc_ratio", "concurrent x raw", "{:.2f}", True)),
    ("mixed", Column("success", "mixed: success %", "{:.1f}", False)),
    ("mixed", Column("p99", "mixed: p99 (s)", "{:.2f}", True)),
    ("mixed", Column("upstream_per_success", "mixed: calls / success", "{:.2f}", True)),
    ("outage", Column("shift", "outage: shift (s)", "{:.2f}", True, "never")),
    ("outage", Column("wasted", "outage: wasted calls", "{:.0f}", True)),
    ("outage", Column("back", "outage: return (s)", "{:.2f}", True, "never")),
    ("limiter", Column("overshoot", "limiter: overshoot", "{:.0f}", True)),
    ("limiter", Column("r429", "limiter: 429s", "{:.0f}", True)),
]


def _headline(scenarios: dict[str, Runs], systems: list[str]) -> list[str]:
    merged: Runs = {s: [] for s in systems}
    columns = []
    for name, column in HEADLINE:
        if name not in scenarios:
            continue
        key = f"{name}.{column.key}"
        columns.append(
            Column(key, column.header, column.fmt, column.lower_is_better, column.missing)
        )
        for system in systems:
            runs = scenarios[name].get(system, [])
            while len(merged[system]) < len(runs):
                merged[system].append({})
            for index, run in enumerate(runs):
                merged[system][index][key] = run.get(column.key)
    return _table(merged, systems, columns)


def _targets(scenarios: dict[str, Runs]) -> list[str]:
    """The issue's targets for the engine, each with its figure and whether it is met."""
    rows: list[tuple[str, str, bool | None]] = []

    def v(scenario: str, system: str, key: str) -> float | None:
        return _value(scenarios[scenario], system, key) if scenario in scenarios else None

    def check(label: str, figure: float | None, fmt: str, ok: bool | None) -> None:
        shown = "—" if figure is None else ("∞" if math.isinf(figure) else fmt.format(figure))
        rows.append((label, shown, None if figure is None else ok))

    for key, what in (("seq_ratio", "sequential"), ("conc_ratio", "concurrent")):
        ratio = v("overhead", "engine", key)
        check(f"overhead ≤ 1.10x raw SDK, {what}", ratio, "{:.2f}x", (ratio or 0) <= 1.10)
    ours, theirs = v("overhead", "engine", "seq_us"), v("overhead", "litellm", "seq_us")
    check(
        "overhead below LiteLLM Router's, sequential (µs/call)",
        ours,
        "{:.0f} µs vs " + (f"{theirs:.0f} µs" if theirs else "—"),
        ours is not None and theirs is not None and ours < theirs,
    )
    ours, theirs = v("overhead", "engine", "conc_rps"), v("overhead", "litellm", "conc_rps")
    check(
        "throughput above LiteLLM Router's, concurrent (calls/s)",
        ours,
        "{:.0f} vs " + (f"{theirs:.0f}" if theirs else "—"),
        ours is not None and theirs is not None and ours > theirs,
    )
    for system in ("engine", "lc_resilient"):
        name = LABELS[system]
        success = v("mixed", system, "success")
        check(f"{name}: mixed faults, 100 % success", success, "{:.1f} %", success == 100)
        per = v("mixed", system, "upstream_per_success")
        check(f"{name}: ≤ 1.2 upstream calls per success", per, "{:.2f}", (per or 9) <= 1.2)
        p99 = v("mixed", system, "p99")
        peers = [
            p
            for peer in ("raw", "litellm", "lc_peer")
            if (p := v("mixed", peer, "p99")) is not None
        ]
        check(
            f"{name}: p99 below every peer's",
            p99,
            "{:.2f} s vs best peer "
            + (_text(min(peers), Column("", "", "{:.2f} s")) if peers else "—"),
            p99 is not None and bool(peers) and p99 < min(peers),
        )
        over = v("limiter", system, "overshoot")
        check(f"{name}: limiter overshoot 0", over, "{:.0f}", over == 0)
        r429 = v("limiter", system, "r429")
        check(f"{name}: 0 self-inflicted 429s (limit = quota)", r429, "{:.0f}", r429 == 0)
    lines = ["| target | figure | met |", "|---|---:|:---:|"]
    for label, shown, ok in rows:
        mark = "—" if ok is None else ("yes" if ok else "**no**")
        lines.append(f"| {label} | {shown} | {mark} |")
    return lines


def _failures(runs: Runs, systems: list[str]) -> list[str]:
    lines = []
    for system in systems:
        counts: Counter[str] = Counter()
        for run in runs.get(system, []):
            errors = run.get("errors")
            if isinstance(errors, dict):
                counts.update(errors)
        if counts:
            kinds = ", ".join(f"{kind} x{n}" for kind, n in counts.most_common())
            lines.append(f"- {LABELS[system]}: {kinds}")
    return lines


def _meta(meta: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    mode = "quick mode, " if meta.get("quick") else ""
    foreign = meta.get("foreign_cores", {})
    load = ", ".join(f"{name} {cores:.2f}" for name, cores in foreign.items())
    busy = [name for name, cores in foreign.items() if cores > 0.2]
    warning = (
        f" **Other work shared the machine during {', '.join(busy)}: treat those timings "
        "with care.**"
        if busy
        else ""
    )
    return [
        f"Run {meta['date']} ({mode}{meta['reps']} repetition(s), {meta.get('duration_s', '?')} s) "
        f"on {meta['cpu']}, {meta['cores']} cores, {meta['memory']}, {meta['os']}, "
        f"Python {meta['python']}.",
        "",
        f"Versions: {versions}.",
        "",
        f"CPU cores used by other processes on the machine, on average per scenario: {load}."
        + warning,
    ]


_METHOD = """\
- Every (scenario, system, repetition) gets a fresh chaos server (`resilient_llm.testing.chaos`,
  OpenAI / Anthropic / Gemini wire protocols on 127.0.0.1) with the same plans and seeds,
  and a fresh worker process that imports only its own system. The server runs in the
  orchestrator process, so on this 2-core machine server and client each have a core.
- Between the worker's warm-up and the measured run every plan is set again (scripts,
  RNGs, quota windows and outage clocks restart) and the log is cleared: upstream calls,
  429s, overshoot and send order come from the server's request log, not from the clients.
- Shared policy, expressed in each system's own knobs: {policy}. Every request also gets
  the caller's deadline as `asyncio.wait_for`, whatever the system, and a failed request's
  time to answer is infinite (it never got one).
- Figures are medians over repetitions (for overhead: over 5 interleaved rounds of one
  set of workers, see its section); ratios to the raw SDK are taken within a repetition
  or round. The order of the systems rotates between repetitions. Runs paced by the
  clock rather than the CPU run side by side behind one start barrier: every system in the
  outage scenario (one repetition at a time) and the limiter scenario (all at once), and in
  the mixed-faults scenario the raw SDK and the LangChain chain, which spend it waiting (see
  their CPU column). Everything else runs alone: overhead, and the busy mixed-faults runs.
- Every worker refuses connections and name lookups beyond loopback; refused attempts are
  counted ({blocked} in this run). No API keys: every system gets a dummy key.
"""


def render(results: dict[str, Any], out: Path) -> Path:
    systems: list[str] = results["systems"]
    scenarios: dict[str, Runs] = results["scenarios"]
    figures = plots.draw(results, out)
    blocked = sum(
        run.get("blocked", 0)
        for runs in scenarios.values()
        for system_runs in runs.values()
        for run in system_runs
    )
    policy = Policy()
    lines = ["# Benchmarks: resilient-llm and its peers, side by side", ""]
    lines += _meta(results["meta"])
    lines += ["", "Run with `make bench` (`python -m benchmarks.run --quick` for a smoke run).", ""]
    lines += ["## Headline", "", *_headline(scenarios, systems)]
    lines += ["", "## Targets (resilient-llm)", "", *_targets(scenarios)]
    for number, (name, runs) in enumerate(scenarios.items(), 1):
        scenario = SCENARIOS[name]
        doc = (scenario.__doc__ or "").strip()  # type: ignore[attr-defined]
        lines += ["", f"## {number}. {scenario.TITLE}", "", doc, ""]
        lines += _table(runs, systems, scenario.COLUMNS)
        failures = _failures(runs, systems)
        if failures:
            lines += ["", "Failed requests by kind (all repetitions):", "", *failures]
        if name in figures:
            lines += ["", f"![{scenario.TITLE}]({figures[name]})"]
    lines += ["", "## How each system is configured", ""]
    lines += [f"- **{LABELS[s]}**: {CONFIGURATION[s]}" for s in systems]
    lines += ["", "## Method", ""]
    lines += [
        _METHOD.format(
            policy=(
                f"retries per provider {policy.retries}, breaker after {policy.breaker_failures} "
                f"failures, cooldown {policy.cooldown:g} s (deadline per scenario)"
            ),
            blocked=blocked,
        ).rstrip()
    ]
    path = out / "latest.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    out = Path(__file__).resolve().parent / "results"
    render(json.loads((out / "latest.json").read_text()), out)


if __name__ == "__main__":
    main()
