# The README's two commands. Each creates .venv when missing and installs the project
# with what it needs, so a machine with only Python 3.11+ and the package registries suffices.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

GENAI2 := .venv-genai2

.PHONY: demo test lint typecheck pytest pytest-genai2 redis-server clean

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

pytest: $(STAMP) redis-server
	$(BIN)/python -m pytest -n auto

# The Redis backend's tests start their own redis-server (tests/backends/conftest.py; in CI a
# missing one fails them): the Debian package, installed here when the command is missing.
# While it installs, a policy-rc.d that refuses keeps the package from starting the system
# service (an existing policy-rc.d is left as it is). sudo is used when not root.
REDIS_SERVER ?= redis-server
redis-server:
	@if ! command -v $(REDIS_SERVER) >/dev/null 2>&1; then \
		sudo=""; \
		if [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi; \
		policy=/usr/sbin/policy-rc.d; added=""; \
		if [ ! -e "$$policy" ]; then \
			printf '#!/bin/sh\nexit 101\n' | $$sudo tee "$$policy" >/dev/null && \
			$$sudo chmod 755 "$$policy" && added=1; \
		fi; \
		get() { $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server; }; \
		status=0; get || { $$sudo apt-get update -q && get; } || status=$$?; \
		if [ -n "$$added" ]; then $$sudo rm -f "$$policy"; fi; \
		exit $$status; \
	fi

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

test: redis-server lint typecheck pytest-genai2 pytest

clean:
	rm -rf $(VENV) $(GENAI2) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# Benchmarks against the peers (benchmarks/): their own venv, since LangChain's Gemini package
# pins google-genai 2.x and LiteLLM has pins of its own. Not part of `make test`: tests never
# time anything. BENCH_ARGS=--quick for a smoke run. Then the overhead against its floors: the
# raw SDK on both async transports, ChatOpenAI, RedisState against memory, RSS at 10k and 100k
# calls (benchmarks/floors.py). Then each beyond-the-peers feature, off
# and on (benchmarks/features.py). Then the caller's event-loop lag, with the route state in a
# real Redis behind a delaying proxy (benchmarks/loop_lag.py; it starts its own redis-server).
# Then the outage overshoot: processes sharing a quota in Redis, Redis killed for 3 s and
# restarted empty (benchmarks/redis_faults.py).
BENCH := .venv-bench

$(BENCH)/.installed: pyproject.toml benchmarks/requirements.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "resilient-llm needs Python 3.11+"'
	$(PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH)/bin/python -m pip install --quiet -e '.[langchain,redis]' -r benchmarks/requirements.txt
	touch $@

.PHONY: bench
bench: $(BENCH)/.installed redis-server
	$(BENCH)/bin/python -m benchmarks.run $(BENCH_ARGS)
	$(BENCH)/bin/python -m benchmarks.floors $(BENCH_ARGS)
	$(BENCH)/bin/python -m benchmarks.features
	$(BENCH)/bin/python -m benchmarks.loop_lag $(BENCH_ARGS)
	$(BENCH)/bin/python -m benchmarks.redis_faults $(BENCH_ARGS)
	$(BENCH)/bin/python -m benchmarks.redis_cluster
