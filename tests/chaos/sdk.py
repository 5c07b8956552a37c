"""Helpers shared by the chaos tests: SDK clients pointed at a chaos server, and prompts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import anthropic
import openai
from google import genai
from google.genai import types

from resilient_llm.testing.chaos import ChaosServer

PROMPT = "What is the capital of France?"
WEATHER_PROMPT = "What's the weather in 'Lyon' for the next 3 days?"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "days"],
}
CITY_PROMPT = "Describe Paris, population 2100000"

T = TypeVar("T")


def drain(items: Iterable[T], into: list[T]) -> None:
    """Consume a stream, keeping what arrived before it failed."""
    for item in items:
        into.append(item)


def openai_client(
    server: ChaosServer, prefix: str = "openai", timeout: float = 5.0
) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url(prefix), api_key="test-key", max_retries=0, timeout=timeout
    )


def anthropic_client(
    server: ChaosServer, prefix: str = "anthropic", timeout: float = 5.0
) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=server.base_url(prefix), api_key="test-key", max_retries=0, timeout=timeout
    )


def gemini_options(
    server: ChaosServer, prefix: str = "gemini", timeout: float = 5.0
) -> types.HttpOptions:
    return types.HttpOptions(
        base_url=server.base_url(prefix),
        api_version="v1beta",
        timeout=int(timeout * 1000),  # milliseconds
        retry_options=types.HttpRetryOptions(attempts=1),
    )


def gemini_client(
    server: ChaosServer, prefix: str = "gemini", timeout: float = 5.0
) -> genai.Client:
    return genai.Client(api_key="test-key", http_options=gemini_options(server, prefix, timeout))


def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Wait for something the server does after the client has moved on (e.g. logging a
    request whose client timed out): polls, never asserts on elapsed time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
