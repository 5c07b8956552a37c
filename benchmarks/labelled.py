"""Result files kept by label: re-running a benchmark under a label replaces only its part.

A markdown file holds a preamble and one ``## <label>`` section per run label; its JSON twin
holds one entry per label. Before/after figures of a change then sit side by side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["replace_entry", "replace_section"]


def replace_section(markdown: Path, preamble: str, label: str, section: str) -> None:
    """Write ``section`` (starting ``## label``) in place of that label's, or last."""
    sections: dict[str, str] = {}
    if markdown.exists():
        current: str | None = None
        for line in markdown.read_text(encoding="utf-8").splitlines(keepends=True):
            if line.startswith("## "):
                current = line[3:].strip()
                sections[current] = ""
            if current is not None:
                sections[current] += line
    sections[label] = section
    body = "\n".join(s.rstrip("\n") + "\n" for s in sections.values())
    markdown.parent.mkdir(exist_ok=True)
    markdown.write_text(preamble + "\n" + body, encoding="utf-8")


def replace_entry(data_file: Path, label: str, entry: dict[str, Any]) -> None:
    """Set ``label``'s entry of a JSON object file, keeping the others."""
    data: dict[str, Any] = {}
    if data_file.exists():
        data = json.loads(data_file.read_text(encoding="utf-8"))
    data[label] = entry
    data_file.parent.mkdir(exist_ok=True)
    data_file.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
