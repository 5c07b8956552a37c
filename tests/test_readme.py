"""The README's examples run as written, against the chaos server instead of the internet.

Each SDK reads its base URL from the environment when none is given (``OPENAI_BASE_URL``,
``ANTHROPIC_BASE_URL``, ``GOOGLE_GEMINI_BASE_URL``), so the example's code is unchanged.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from resilient_llm.testing.chaos import ChaosServer

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"\n{section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def _point_sdks_at(server: ChaosServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDKs' own environment variables: the example's code stays as printed."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url("openai"))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url("anthropic"))
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url("gemini"))
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.setenv(variable, "readme-example")


def test_usage_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    block = python_blocks("## Usage")[0]
    with ChaosServer() as server:
        server.script("openai", "rate_limit")
        _point_sdks_at(server, monkeypatch)
        namespace: dict[str, object] = {}
        exec(compile(block, str(README), "exec"), namespace)
        reply = namespace["reply"]
        assert "Paris" in reply.content  # type: ignore[attr-defined]
        assert reply.provider == "anthropic"  # type: ignore[attr-defined]
        assert [r.provider for r in server.log] == ["openai", "anthropic"]


def test_beyond_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = python_blocks("## Beyond retries and failover")
    with ChaosServer() as server:
        _point_sdks_at(server, monkeypatch)
        namespace: dict[str, object] = {}
        exec(compile(block, str(README), "exec"), namespace)
        llm = namespace["llm"]
        assert namespace["reply"].metadata["cache"] == "miss"  # type: ignore[attr-defined]
        again = llm.chat("What is the capital of France?", temperature=0)  # type: ignore[attr-defined]
        assert again.metadata["cache"] == "hit"
        assert [r.provider for r in server.log] == ["openai"]


def test_tools_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    block = python_blocks("### Tools and structured output")[0]
    with ChaosServer() as server:
        _point_sdks_at(server, monkeypatch)
        namespace: dict[str, object] = {}
        exec(compile(block, str(README), "exec"), namespace)
        assert [(r.provider, r.status) for r in server.log] == [("openai", 200)] * 2
    printed = capsys.readouterr().out.splitlines()
    assert "name='add', arguments={'a': 2, 'b': 3}" in printed[0]
    assert sorted(ast.literal_eval(printed[1])) == ["city", "country"]


def test_chaos_example_runs() -> None:
    (block,) = python_blocks("### The chaos providers")
    exec(compile(block, str(README), "exec"), {})


def test_langchain_example_runs() -> None:
    (block,) = python_blocks("## LangChain")
    namespace: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert namespace["answer"] == "The capital of France is Paris."


def test_llamaindex_example_runs() -> None:
    (block,) = python_blocks("## LlamaIndex")
    namespace: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert str(namespace["answer"]) == "The capital of France is Paris."


def test_media_and_reasoning_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = python_blocks("## Images, documents, audio and reasoning")
    with ChaosServer() as server:
        server.script("openai", "server_error", "server_error", "server_error", "server_error")
        server.script("openai", "rate_limit", "rate_limit")
        _point_sdks_at(server, monkeypatch)
        namespace: dict[str, object] = {}
        exec(compile(block, str(README), "exec"), namespace)
        reply, step, final = (namespace[name] for name in ("reply", "step", "final"))
        # The image question failed over and reached Anthropic as sent.
        assert reply.provider == "anthropic"  # type: ignore[attr-defined]
        image = ("image", None, "url:https://example.com/eiffel.png", "message")
        answered = [r for r in server.log if r.status == 200]
        assert answered[0].carried.parts == (image,)
        # The thinking tool loop sent the signature back exactly as issued.
        (signed,) = step.reasoning  # type: ignore[attr-defined]
        assert signed.family == "anthropic"
        assert answered[-1].carried.signatures == (signed.signature,)
        assert final.content  # type: ignore[attr-defined]


def test_stream_recovery_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    block = python_blocks("### Streams that survive a broken provider")[0]
    with ChaosServer() as server:
        server.script("openai", "truncate")
        _point_sdks_at(server, monkeypatch)
        namespace: dict[str, object] = {}
        exec(compile(block, str(README), "exec"), namespace)
        assert namespace["text"] == "The capital of France is Paris."
        seam = namespace["seam"]
        assert (seam["from"], seam["to"], seam["form"]) == ("openai", "anthropic", "prefill")  # type: ignore[index]
        assert [r.provider for r in server.log] == ["openai", "anthropic"]
