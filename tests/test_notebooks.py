"""The notebooks in ``notebooks/`` run top to bottom, offline, and draw their figures.

Each notebook is executed by nbclient in a fresh IPython kernel of this interpreter (a
first cell checks ``sys.prefix``), with every provider key and ``RESILIENT_LLM_LIVE``
removed from the kernel's environment, so it starts its own chaos server on 127.0.0.1.
An error in any cell fails the test. Figures go to a temporary directory through
``RESILIENT_LLM_FIGURES`` and are checked to be real images. The committed notebooks carry
no outputs, so they stay small and diff cleanly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from jupyter_client.manager import KernelManager
from matplotlib import image
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIGURES = {
    "01_seed_story.ipynb": ("01_timeline.png", "01_limiter.png"),
    "02_langchain.ipynb": ("02_langchain.png",),
    "03_llamaindex.ipynb": ("03_llamaindex.png",),
    "04_rate_limits.ipynb": ("04_rate_limits.png", "04_windows.png"),
}
# What could send a notebook to the real providers, or an SDK elsewhere than asked.
LIVE_SWITCHES = (
    "RESILIENT_LLM_LIVE",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
)


def offline_environment(figures: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LIVE_SWITCHES}
    env["RESILIENT_LLM_FIGURES"] = str(figures)
    env["MPLBACKEND"] = "Agg"
    return env


def test_every_notebook_is_covered() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(FIGURES)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_offline_and_saves_its_figures(name: str, tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    same_interpreter = f"import sys\nassert sys.prefix == {sys.prefix!r}, sys.prefix"
    notebook.cells.insert(0, nbformat.v4.new_code_cell(same_interpreter))
    figures = tmp_path / "figures"
    # IPC sockets rather than TCP ports: kernels started side by side (xdist) never race
    # for a port.
    manager = KernelManager(kernel_name="python3", transport="ipc", ip=str(tmp_path / "kernel"))
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute(env=offline_environment(figures))

    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", output
            assert output.get("name") != "stderr", output.get("text")
    for figure in FIGURES[name]:
        path = figures / figure
        assert path.is_file(), f"{name} did not save {figure}"
        assert path.stat().st_size > 20_000, f"{figure} is suspiciously small"
        pixels = image.imread(path)
        height, width = pixels.shape[:2]
        assert width >= 800, (figure, width)
        assert height >= 250, (figure, height)
        colours = np.unique(pixels[::4, ::4, :3].reshape(-1, 3), axis=0)
        assert len(colours) > 20, f"{figure} is nearly blank"


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_committed_notebook_is_stripped_and_says_what_it_shows(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: committed with outputs"
            assert cell.execution_count is None, f"{name}: committed with execution counts"
    first = notebook.cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith("# ")
    assert "Runs offline by default" in first.source
    assert "RESILIENT_LLM_LIVE=1" in first.source
    assert "RESILIENT_LLM_FIGURES" in first.source
    setup = notebook.cells[1].source
    assert 'os.environ.get("RESILIENT_LLM_LIVE") == "1"' in setup


def test_readme_links_every_notebook() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Notebooks\n")
    section = readme[start : readme.index("\n## ", start + 1)]
    for name in FIGURES:
        assert f"(notebooks/{name})" in section, name
