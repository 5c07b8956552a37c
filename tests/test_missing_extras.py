"""Importing a plugin without its extra names the extra to install, and the license ships."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("plugin", "blocked", "extra"),
    [
        ("langchain_resilient", "langchain_core", "resilient-llm[langchain]"),
        ("llamaindex_resilient", "llama_index", "resilient-llm[llamaindex]"),
        ("llamaindex_resilient", "llama_index.core", "resilient-llm[llamaindex]"),
    ],
)
def test_a_plugin_without_its_extra_names_the_extra(plugin: str, blocked: str, extra: str) -> None:
    # A None in sys.modules makes that import fail as if the package were not installed.
    code = (
        "import sys\n"
        f"sys.modules[{blocked!r}] = None\n"
        "try:\n"
        f"    import {plugin}\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('imported without its dependency')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert f"pip install '{extra}'" in done.stdout


def test_the_engine_imports_without_either_framework() -> None:
    code = (
        "import sys\n"
        "sys.modules['langchain_core'] = None\n"
        "sys.modules['llama_index'] = None\n"
        "import resilient_llm\n"
        "resilient_llm.ResilientLLM\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_mit_license_is_there() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "resilient-llm developers" in text
