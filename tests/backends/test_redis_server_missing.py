"""Without ``redis-server`` the Redis tests skip, saying why, except in CI, where they fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ONE_TEST = "tests/backends/test_state_suite.py::test_rpm_two_third_waits_one_window[redis]"


def _pytest_without_redis(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CI"))}
    env["PATH"] = str(tmp_path)  # nothing on it: no redis-server to find
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", ONE_TEST, "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )


def test_a_missing_server_skips_outside_ci(tmp_path: Path) -> None:
    run = _pytest_without_redis(tmp_path, None)
    assert run.returncode == 0, run.stdout[-2000:]
    assert "1 skipped" in run.stdout
    assert "redis-server is not installed" in run.stdout


def test_a_missing_server_fails_in_ci(tmp_path: Path) -> None:
    run = _pytest_without_redis(tmp_path, "true")
    assert run.returncode == 1, run.stdout[-2000:]
    assert "1 error" in run.stdout
    assert "redis-server is not installed" in run.stdout
    assert "CI must run them" in run.stdout
