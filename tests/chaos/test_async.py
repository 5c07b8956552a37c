"""The async SDK clients against the same server: its loop is not the test's loop.

Each test makes its own async client (async clients belong to the loop that first used
them, and each test has a new loop).
"""

from __future__ import annotations

import aiohttp
import anthropic
import openai
import pytest
from google.genai import errors

from resilient_llm.testing.chaos import ChaosServer

from .sdk import PROMPT, anthropic_client, gemini_client, openai_client

# google-genai's own class definition warns on import of its aiohttp session.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession")

PARIS = "The capital of France is Paris."
USER = [{"role": "user", "content": PROMPT}]


async def test_openai_async(chaos: ChaosServer) -> None:
    sync = openai_client(chaos)
    async with openai.AsyncOpenAI(
        base_url=str(sync.base_url), api_key="test-key", max_retries=0, timeout=5
    ) as client:
        reply = await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert reply.choices[0].message.content == PARIS
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True
        )
        assert "".join([c.choices[0].delta.content or "" async for c in stream]) == PARIS
        chaos.script("openai", "truncate")
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True
        )
        with pytest.raises(openai.APIConnectionError):
            [c async for c in stream]
    sync.close()


async def test_anthropic_async(chaos: ChaosServer) -> None:
    sync = anthropic_client(chaos)
    async with anthropic.AsyncAnthropic(
        base_url=str(sync.base_url), api_key="test-key", max_retries=0, timeout=5
    ) as client:
        reply = await client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=USER)
        assert reply.content[0].type == "text"
        assert reply.content[0].text == PARIS
        async with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=50, messages=USER
        ) as stream:
            assert "".join([t async for t in stream.text_stream]) == PARIS
        chaos.script("anthropic", "overloaded")
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(model="claude-haiku-4-5", max_tokens=50, messages=USER)
    sync.close()


async def test_gemini_async(chaos: ChaosServer) -> None:
    # google-genai's async path runs on aiohttp (installed here): its transport errors are
    # aiohttp's own, e.g. ClientPayloadError for a truncated stream, ClientOSError for a
    # reset, and builtin TimeoutError for a hang.
    client = gemini_client(chaos)
    reply = await client.aio.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    assert reply.text == PARIS
    stream = await client.aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents=PROMPT
    )
    assert "".join([c.text or "" async for c in stream]) == PARIS
    chaos.script("gemini", "overloaded", "truncate", "reset")
    with pytest.raises(errors.ServerError):
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    stream = await client.aio.models.generate_content_stream(
        model="gemini-2.5-flash", contents=PROMPT
    )
    with pytest.raises(aiohttp.ClientPayloadError):
        [c async for c in stream]
    with pytest.raises(aiohttp.ClientOSError):
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    await client.aio.aclose()
    client.close()


async def test_gemini_async_hang_is_a_builtin_timeout(chaos: ChaosServer) -> None:
    chaos.script("gemini", "hang")
    client = gemini_client(chaos, timeout=0.2)
    with pytest.raises(TimeoutError):
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)
    await client.aio.aclose()
    client.close()
