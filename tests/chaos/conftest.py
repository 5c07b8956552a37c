"""One chaos server per test session (per xdist worker), official SDK clients pointed at it.

Every test starts from a fresh default plan on the shared prefixes and an empty log, so
scripted faults never leak between tests. SDK retries are off everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest
from google import genai

from resilient_llm import FakeClock
from resilient_llm.testing.chaos import ChaosServer, Plan

from .sdk import anthropic_client, gemini_client, openai_client

PREFIXES = ("openai", "anthropic", "gemini")


@pytest.fixture(scope="session")
def chaos() -> Iterator[ChaosServer]:
    with ChaosServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_plans(chaos: ChaosServer) -> None:
    for prefix in PREFIXES:
        chaos.set_plan(prefix, Plan())
    chaos.clear_log()


@pytest.fixture
def clocked() -> Iterator[tuple[ChaosServer, FakeClock]]:
    """A private server on a fake clock: quotas and outages move only when the test says."""
    clock = FakeClock(1000.0)
    with ChaosServer(clock=clock.now) as server:
        yield server, clock


@pytest.fixture(scope="session")
def oai(chaos: ChaosServer) -> Iterator[openai.OpenAI]:
    with openai_client(chaos) as client:
        yield client


@pytest.fixture(scope="session")
def ant(chaos: ChaosServer) -> Iterator[anthropic.Anthropic]:
    with anthropic_client(chaos) as client:
        yield client


@pytest.fixture(scope="session")
def gem(chaos: ChaosServer) -> Iterator[genai.Client]:
    client = gemini_client(chaos)  # keep the reference: a temporary Client closes itself
    yield client
    client.close()
