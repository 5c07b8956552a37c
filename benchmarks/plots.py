"""The report's figures, one PNG per scenario, small enough to keep in the repository."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend is chosen first

from .scenarios import limiter, mixed, outage
from .stats import median
from .systems import LABELS

__all__ = ["draw"]

_DPI = 80
_COLORS = {
    "raw": "#7f7f7f",
    "engine": "#1f77b4",
    "lc_resilient": "#17becf",
    "litellm": "#ff7f0e",
    "lc_peer": "#2ca02c",
}

Runs = dict[str, list[dict[str, Any]]]


def _median(runs: Runs, system: str, key: str) -> float:
    value = median(run.get(key) for run in runs[system])
    return math.nan if value is None else value


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path.name


def _overhead(runs: Runs, systems: list[str], path: Path) -> str:
    fig, (seq, conc) = plt.subplots(1, 2, figsize=(9, 3.4))
    labels = [LABELS[s] for s in systems]
    colors = [_COLORS[s] for s in systems]
    seq_values = [_median(runs, s, "seq_us") for s in systems]
    conc_values = [_median(runs, s, "conc_rps") for s in systems]
    seq.barh(labels, seq_values, color=colors)
    seq.set_xlabel("µs per call, sequential (lower is better)")
    conc.barh(labels, conc_values, color=colors)
    conc.set_xlabel("calls/s at concurrency 100 (higher is better)")
    conc.set_yticklabels([])
    for axis, values, fmt in ((seq, seq_values, "{:.0f}"), (conc, conc_values, "{:.0f}")):
        axis.invert_yaxis()
        for index, value in enumerate(values):
            axis.text(value, index, " " + fmt.format(value), va="center", fontsize=8)
        axis.margins(x=0.2)
    return _save(fig, path)


def _mixed(runs: Runs, systems: list[str], path: Path, deadline: float) -> str:
    fig, axis = plt.subplots(figsize=(9, 3.6))
    width = 0.26
    for offset, key in enumerate(("p50", "p95", "p99")):
        for index, system in enumerate(systems):
            value = _median(runs, system, key)
            capped = min(value, deadline)
            x = index + (offset - 1) * width
            axis.bar(
                x,
                capped,
                width,
                color=_COLORS[system],
                alpha=0.45 + 0.25 * offset,
                hatch="//" if math.isinf(value) else None,
            )
            axis.text(x, capped, "∞" if math.isinf(value) else key, ha="center", fontsize=7)
    axis.set_xticks(range(len(systems)))
    axis.set_xticklabels(
        [f"{LABELS[s]}\n{_median(runs, s, 'success'):.1f} % ok" for s in systems],
        fontsize=8,
    )
    axis.set_ylabel("time to answer (s)")
    axis.set_title("Mixed faults: p50 / p95 / p99 (hatched: no answer, ∞)", fontsize=10)
    return _save(fig, path)


def _outage(runs: Runs, systems: list[str], path: Path, quick: bool) -> str:
    start, end, duration = outage.window(quick)
    fig, axes = plt.subplots(len(systems), 1, figsize=(9, 1.2 + 1.1 * len(systems)), sharex=True)
    axes = list(axes) if len(systems) > 1 else [axes]
    bins = [i * 0.5 for i in range(int(2 * (duration + 5)) + 1)]
    kinds = (
        ("primary ok", lambda p, s: p == outage.PRIMARY and s == 200, "#1f77b4"),
        ("primary failed", lambda p, s: p == outage.PRIMARY and s != 200, "#d62728"),
        ("fallback ok", lambda p, s: p != outage.PRIMARY and s == 200, "#2ca02c"),
        ("fallback failed", lambda p, s: p != outage.PRIMARY and s != 200, "#ff7f0e"),
    )
    for axis, system in zip(axes, systems, strict=True):
        series = runs[system][0].get("series", [])
        stacks = [[t for t, p, s in series if test(p, s)] for _, test, _ in kinds]
        axis.hist(
            stacks,
            bins=bins,
            stacked=True,
            color=[c for *_, c in kinds],
            label=[k for k, *_ in kinds],
        )
        axis.axvspan(start, end, color="#d62728", alpha=0.08)
        axis.set_ylabel(LABELS[system], rotation=0, ha="right", va="center", fontsize=8)
    axes[0].legend(fontsize=7, ncol=4, loc="upper right")
    axes[0].set_title("Upstream calls per 0.5 s (shaded: primary down)", fontsize=10)
    axes[-1].set_xlabel("seconds since start")
    return _save(fig, path)


def _limiter(runs: Runs, systems: list[str], path: Path, quick: bool) -> str:
    rpm, _, _ = limiter.load(quick)
    fig, axis = plt.subplots(figsize=(9, 3.6))
    styles = ("-", "--", "-.", ":", "-")
    ends = [t for s in systems for t, _ in runs[s][0].get("series", [])]
    grid = [i * 0.25 for i in range(int(4 * (max(ends, default=0) + 1)) + 1)]
    for system, style in zip(systems, styles, strict=False):
        times = sorted(t for t, _ in runs[system][0].get("series", []))
        # What the provider counts at each moment: sends in the 60 s before it.
        counts, first, last = [], 0, 0
        for t in grid:
            while last < len(times) and times[last] <= t:
                last += 1
            while first < last and times[first] <= t - 60:
                first += 1
            counts.append(last - first)
        axis.plot(
            grid,
            counts,
            style,
            color=_COLORS[system],
            linewidth=2.4 if system == "engine" else 1.4,
            label=LABELS[system],
        )
    axis.axhline(rpm, color="black", linestyle="--", linewidth=1, label="quota")
    axis.set_xlabel("seconds since start")
    axis.set_ylabel("sent in the last 60 s")
    axis.set_title("Limiter: requests reaching the provider, sliding 60 s window", fontsize=10)
    axis.legend(fontsize=7)
    return _save(fig, path)


def draw(results: dict[str, Any], out: Path) -> dict[str, str]:
    """Draw every scenario present in ``results``; returns scenario name -> file name."""
    systems: list[str] = results["systems"]
    quick = bool(results["meta"]["quick"])
    scenarios: dict[str, Runs] = results["scenarios"]
    files: dict[str, str] = {}
    if "overhead" in scenarios:
        files["overhead"] = _overhead(scenarios["overhead"], systems, out / "overhead.png")
    if "mixed" in scenarios:
        deadline = mixed.setup(quick).policy.deadline
        files["mixed"] = _mixed(scenarios["mixed"], systems, out / "mixed.png", deadline)
    if "outage" in scenarios:
        files["outage"] = _outage(scenarios["outage"], systems, out / "outage.png", quick)
    if "limiter" in scenarios:
        files["limiter"] = _limiter(scenarios["limiter"], systems, out / "limiter.png", quick)
    return files
