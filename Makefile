# The README's two commands. Each creates .venv when missing and installs the project
# with what it needs, so a machine with only Python 3.11+ and the package registries suffices.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

GENAI2 := .venv-genai2

.PHONY: demo test lint typecheck pytest pytest-genai2 clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "resilient-llm needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m resilient_llm demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -n auto

# LangChain's Gemini package pins google-genai 2.x while plain pip picks 3.x: the Gemini
# adapter's tests run against both (the main venv has 3.x).
$(GENAI2)/.installed: pyproject.toml
	$(PYTHON) -m venv $(GENAI2)
	$(GENAI2)/bin/python -m pip install --quiet --upgrade pip
	$(GENAI2)/bin/python -m pip install --quiet -e . 'google-genai>=2.20,<3' \
		pytest pytest-timeout pytest-asyncio pytest-xdist hypothesis
	touch $@

pytest-genai2: $(GENAI2)/.installed
	$(GENAI2)/bin/python -c 'import google.genai as g; assert g.__version__.startswith("2."), g.__version__'
	$(GENAI2)/bin/python -m pytest tests/providers -k gemini -n auto -W ignore::pytest.PytestConfigWarning

test: lint typecheck pytest-genai2 pytest

clean:
	rm -rf $(VENV) $(GENAI2) .mypy_cache .ruff_cache .pytest_cache .hypothesis
