"""The ``resilient-llm`` console script: its commands parse, and bad use says what is wrong."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resilient_llm", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_help_lists_both_commands() -> None:
    out = run("--help")
    assert out.returncode == 0
    assert "demo" in out.stdout
    assert "chaos" in out.stdout


def test_chaos_serve_refuses_a_missing_plan_file() -> None:
    out = run("chaos", "serve", "--plan", "/nonexistent/plan.json")
    assert out.returncode == 2
    assert "cannot read chaos plan '/nonexistent/plan.json'" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_command_is_an_error() -> None:
    out = run("deploy")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr
