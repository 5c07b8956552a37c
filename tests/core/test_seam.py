"""The seam and the continuation forms, with no I/O: what the caller reads across a break."""

from __future__ import annotations

import pytest

from resilient_llm import (
    Capabilities,
    ChatChunk,
    ChatRequest,
    ConfigurationError,
    Message,
    ProviderUnavailable,
    ResilientLLM,
    StreamRecovery,
    Usage,
)
from resilient_llm.flow.admission import CallReport
from resilient_llm.flow.effects import Relay
from resilient_llm.run.continuation import continuation, form_for, language_of
from resilient_llm.run.resume import Tally
from resilient_llm.run.seam import Seam


def _through(seam: Seam, *pieces: str) -> str:
    return "".join(seam.feed(p) for p in pieces) + seam.flush()


@pytest.mark.parametrize(
    ("delivered", "pieces", "joined"),
    [
        # A restated last word, whole or cut, in one piece or several.
        ("The capital ", ("capital of France",), "The capital of France"),
        ("The capital of France is Pa", ("Pa", "ris."), "The capital of France is Paris."),
        ("The capital of France is Pa", ("ris.",), "The capital of France is Paris."),
        ("The capital ", (" of", " France"), "The capital of France"),
        ("The capital", (" of France",), "The capital of France"),
        ("The capital ", ("The capital of France",), "The capital of France"),
        ("The capital ", ("of France",), "The capital of France"),
        # Far into a long answer, only its end is looked at.
        ("word " * 300 + "The capital ", ("capital of",), "word " * 300 + "The capital of"),
    ],
)
def test_a_restatement_is_said_once(delivered: str, pieces: tuple[str, ...], joined: str) -> None:
    assert delivered + _through(Seam(delivered, restates=True), *pieces) == joined


def test_a_prefill_continuation_is_never_trimmed_past_the_lost_blank() -> None:
    # "bo" + "ok": a true continuation may start with the letters the text ended with.
    assert _through(Seam("a bo", restates=False), "ok") == "ok"
    lost = Seam("The capital ", sent="The capital", restates=False)
    assert _through(lost, " ", "of France") == "of France"
    assert _through(Seam("The capital\n\n", sent="The capital", restates=False), "\n\nNext") == (
        "Next"
    )


def test_a_short_continuation_is_flushed_at_its_end() -> None:
    seam = Seam("The capital ", restates=True)
    assert seam.feed("capital") == ""  # it may yet be the restated "capital "
    assert seam.flush() == "capital"  # it was not: the model said it
    assert Seam("It is ", restates=True).flush() == ""


REQUEST = ChatRequest(messages=(Message("user", "What is the capital of France?"),))


def test_forms_by_family_and_model() -> None:
    assert form_for("anthropic", Capabilities(), REQUEST) == "prefill"
    assert form_for("gemini", Capabilities(), REQUEST) == "prefill"
    assert form_for("openai", Capabilities(), REQUEST) == "instruction"
    assert form_for("openai", Capabilities(prefill=True), REQUEST) == "prefill"
    assert form_for("anthropic", Capabilities.for_model("claude-opus-4-6"), REQUEST) == (
        "instruction"
    )
    assert form_for("anthropic", Capabilities.for_model("claude-haiku-4-5"), REQUEST) == "prefill"
    thinking = ChatRequest(messages=REQUEST.messages, reasoning_effort="low")
    assert form_for("anthropic", Capabilities(), thinking) == "instruction"


def test_the_continuation_request_carries_the_text_so_far() -> None:
    recovery = StreamRecovery()
    prefill, _ = continuation(REQUEST, "The capital ", "prefill", "anthropic", recovery)
    assert [(m.role, m.text) for m in prefill.messages[1:]] == [("assistant", "The capital")]
    asked, _ = continuation(REQUEST, "The capital ", "instruction", "openai", recovery)
    assert [m.role for m in asked.messages] == ["user", "assistant", "user"]
    assert asked.messages[1].text == "The capital "
    assert "without repeating" in asked.messages[2].text


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("What is the capital of France?", "en"),
        ("Quelle est la capitale de la France ? Je ne sais pas.", "fr"),
        ("Was ist die Hauptstadt von Deutschland und wie groß ist sie?", "de"),
        ("¿Cuál es la capital de España y por qué es la capital?", "es"),
        ("フランスの首都はどこですか", "ja"),
        ("法国的首都是哪里", "zh"),
        ("Какая столица Франции?", "ru"),
    ],
)
def test_the_instruction_is_in_the_conversations_language(text: str, language: str) -> None:
    request = ChatRequest(messages=(Message("user", text),))
    assert language_of(request) == language
    asked, _ = continuation(request, "x", "instruction", "openai", StreamRecovery())
    assert asked.messages[-1].text == StreamRecovery().instruction_for(language)


def test_the_instruction_is_configurable() -> None:
    mine = StreamRecovery(instruction="Go on.")
    assert mine.instruction_for("fr") == "Go on."
    some = StreamRecovery(instruction={"fr": "Continue."})
    assert some.instruction_for("fr") == "Continue."
    assert some.instruction_for("en") == StreamRecovery().instruction_for("en")
    with pytest.raises(ConfigurationError, match="instruction"):
        StreamRecovery(instruction=" ")
    with pytest.raises(ConfigurationError, match="max_resumes"):
        StreamRecovery(max_resumes=0)


class _Route:
    name = "first"


def test_usage_sums_the_parts_and_the_seam_is_marked() -> None:
    tally = Tally(Relay(_Route(), CallReport()))  # type: ignore[arg-type]
    first = tally.add(ChatChunk(delta="The capital ", usage=Usage(10, 2)))
    assert first is not None
    assert first.metadata["attempts"] == []  # the call's account, on its first chunk
    second = _Route()
    second.name = "second"
    seam = Seam("The capital ", restates=True)
    tally.continued(Relay(second, CallReport()), seam, {"at": 12, "to": "second"})  # type: ignore[arg-type]
    assert tally.add(ChatChunk(delta="capital")) is None  # held: maybe a restatement
    out = tally.add(ChatChunk(delta=" of France.", usage=Usage(20, 3), finish_reason="stop"))
    assert out is not None
    assert out.delta == "of France."
    assert out.usage == Usage(30, 5)
    assert out.metadata["resumed"] == [{"at": 12, "to": "second"}]
    assert tally.text == "The capital of France."
    broke = ProviderUnavailable("broke", provider="second")
    assert tally.interrupted(broke).usage == Usage(30, 5)


def test_a_bad_setting_names_the_option() -> None:
    with pytest.raises(ConfigurationError, match=r"ResilientLLM\.stream_recovery"):
        ResilientLLM("openai:gpt-4o-mini", stream_recovery="yes")
    llm = ResilientLLM("openai:gpt-4o-mini", stream_recovery="continue")
    assert llm.stream_recovery == StreamRecovery()
    assert ResilientLLM("openai:gpt-4o-mini", stream_recovery="off").stream_recovery is None
    with pytest.raises(ConfigurationError, match="the call's stream_recovery"):
        llm.stream("hi", stream_recovery="always")
