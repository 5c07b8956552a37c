"""How a broken stream's answer is asked for again, from where the caller's text stops.

Two forms, by what the continuing model can take (:class:`Capabilities.prefill`):

- ``prefill``: the text so far as the model's own last turn (an Anthropic assistant
  prefill, a Gemini model turn, a final assistant message to an OpenAI-compatible server
  that continues one). The model goes on from the exact text; Anthropic refuses a
  prefill ending in whitespace, so it gets the text without it.
- ``instruction``: the text as an assistant turn, then a short user turn asking to
  continue without repeating, in the conversation's language (OpenAI's models answer a
  final assistant message anew; Claude 4.6 and later refuse a prefill; Anthropic refuses
  one with thinking on). Such a model may restate the last words: the seam removes them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigurationError
from ..messages import ChatRequest, Message
from ..policies.capabilities import Capabilities
from .seam import Seam

__all__ = [
    "INSTRUCTIONS",
    "Form",
    "StreamRecovery",
    "continuation",
    "form_for",
    "language_of",
    "recovery_setting",
]

Form = Literal["prefill", "instruction"]

# Other scripts' letters and punctuation are meant here, not Latin look-alikes.
INSTRUCTIONS: Mapping[str, str] = {
    "en": "Continue your previous answer exactly where it stopped, without repeating any of it.",
    "fr": "Poursuis ta réponse précédente exactement là où elle s'est arrêtée, sans en rien "
    "répéter.",
    "de": "Setze deine vorige Antwort genau dort fort, wo sie abbrach, ohne etwas davon zu "
    "wiederholen.",
    "es": "Continúa tu respuesta anterior exactamente donde se detuvo, sin repetir nada de ella.",
    "it": "Continua la tua risposta precedente esattamente da dove si è interrotta, senza "
    "ripeterne nulla.",
    "pt": "Continue sua resposta anterior exatamente de onde parou, sem repetir nada dela.",
    "nl": "Ga verder met je vorige antwoord precies waar het stopte, zonder iets ervan te "
    "herhalen.",
    "ru": "Продолжи свой предыдущий ответ точно с того места, где он оборвался, ничего не "  # noqa: RUF001
    "повторяя.",
    "ja": "前の回答を途切れたところからそのまま続けてください。"
    "すでに書いた部分は繰り返さないでください。",
    "zh": "请从上一个回答中断的地方继续，不要重复已经写过的内容。",  # noqa: RUF001
    "ko": "이전 답변이 끊긴 곳에서 그대로 이어서 쓰고, 이미 쓴 내용은 반복하지 마세요.",
    "ar": "تابع إجابتك السابقة من حيث توقفت تمامًا، دون تكرار أي جزء منها.",
}
"""The built-in continue instructions, by language code."""


@dataclass(frozen=True)
class StreamRecovery:
    """How a stream that breaks after text reached the caller is continued
    (``ResilientLLM(stream_recovery=StreamRecovery(...))``; ``"continue"`` is the default one).

    ``instruction``: what a model that cannot take a prefill is told, one text for every
    conversation, or texts by language code (``{"en": ..., "fr": ...}``) over the
    built-in :data:`INSTRUCTIONS`. ``max_resumes``: how many times one call's stream is
    continued (each continuation may break too); the call's deadline bounds them all.
    """

    instruction: str | Mapping[str, str] | None = None
    max_resumes: int = 2

    def __post_init__(self) -> None:
        given = self.instruction
        if isinstance(given, str):
            if not given.strip():
                raise ConfigurationError("StreamRecovery.instruction must not be blank")
        elif given is not None and not (
            isinstance(given, Mapping)
            and all(
                isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in given.items()
            )
        ):
            raise ConfigurationError(
                "StreamRecovery.instruction must be a str or a mapping of language codes "
                f"to non-blank str, got {given!r}"
            )
        turns = self.max_resumes
        if isinstance(turns, bool) or not isinstance(turns, int) or turns < 1:
            raise ConfigurationError(
                f"StreamRecovery.max_resumes must be an int >= 1, got {turns!r}"
            )

    def instruction_for(self, language: str) -> str:
        """The instruction for a conversation in ``language`` (English where none is)."""
        given = self.instruction
        if isinstance(given, str):
            return given
        texts = {**INSTRUCTIONS, **(given or {})}
        return texts.get(language) or texts["en"]


def recovery_setting(what: str, value: object) -> StreamRecovery | None:
    """``stream_recovery`` as held: ``"continue"`` or a ``StreamRecovery`` (on), or
    ``"off"``/``None``/``False`` (off, the default); ``what`` names it in the error."""
    if value in (None, False, "off"):
        return None
    if value == "continue" or value is True:
        return StreamRecovery()
    if isinstance(value, StreamRecovery):
        return value
    raise ConfigurationError(f"{what} must be 'continue', 'off' or a StreamRecovery, got {value!r}")


def form_for(kind: str, caps: Capabilities, request: ChatRequest) -> Form:
    """How a route of ``kind`` whose model has ``caps`` is asked to continue."""
    prefill = caps.prefill if caps.prefill is not None else kind in ("anthropic", "gemini")
    if kind == "anthropic" and request.reasoning_effort is not None:
        prefill = False  # with thinking on, Anthropic refuses a prefilled assistant turn
    return "prefill" if prefill else "instruction"


def continuation(
    request: ChatRequest,
    delivered: str,
    form: Form,
    kind: str,
    recovery: StreamRecovery,
) -> tuple[ChatRequest, Seam]:
    """The request that continues ``delivered`` on a route of ``kind``, and the seam that
    joins its text to what the caller has."""
    sent = delivered.rstrip() if kind == "anthropic" else delivered
    messages = list(request.messages)
    last = messages[-1] if messages else None
    if last is not None and last.role == "assistant" and isinstance(last.content, str):
        # The caller's own prefill, which the broken stream went on from: one turn.
        messages[-1] = dataclasses.replace(last, content=last.content + sent)
    else:
        messages.append(Message("assistant", sent))
    if form == "instruction":
        language = language_of(request, delivered)
        messages.append(Message("user", recovery.instruction_for(language)))
    seam = Seam(delivered, sent=sent, restates=form == "instruction")
    return dataclasses.replace(request, messages=tuple(messages)), seam


# Common short words, by language: a conversation in Latin script is the one whose
# words hit a language's list most.
_WORDS = {
    "en": "the and is are of to in that it you for with this what how not",
    "fr": "le la les des est et une un que qui pour dans pas vous je ce du",
    "de": "der die das und ist nicht ein eine ich sie zu mit den von was wie",
    "es": "el la los las es y un una que en por para con no qué cómo del",
    "it": "il lo la gli le è e un una che di per con non come del della",
    "pt": "o a os as é e um uma que de para com não como do da você",
    "nl": "de het een en is van niet dat ik je met voor wat hoe zijn op",
}
_SETS = {lang: frozenset(words.split()) for lang, words in _WORDS.items()}
_WORD = re.compile(r"\w+", re.UNICODE)
_SCRIPTS = (
    ("ja", re.compile(r"[\u3040-\u30ff]")),  # kana before Han: Japanese writes both
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
)


def language_of(request: ChatRequest, delivered: str = "") -> str:
    """The conversation's language, guessed from the user's words and the answer so far
    (``"en"`` when nothing says otherwise)."""
    said = " ".join(m.text for m in request.messages if m.role == "user")[-2000:]
    text = f"{said} {delivered[-1000:]}"
    for language, script in _SCRIPTS:
        if len(script.findall(text)) >= 2:
            return language
    words = [w.lower() for w in _WORD.findall(text)]
    hits = {lang: sum(w in common for w in words) for lang, common in _SETS.items()}
    best = max(hits, key=lambda lang: hits[lang])
    return best if hits[best] > hits["en"] else "en"
