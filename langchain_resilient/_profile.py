"""``ChatResilientLLM.profile``: LangChain's ``ModelProfile`` from the engine's one table.

A call may be answered by any route, so the profile is what every route can take
(``Capabilities.common`` over the routes, each from the engine's table with its
``Provider(capabilities=...)`` override): the smallest context window and output limit,
and a feature only where every route has it. That is the profile a caller can rely on
whichever route answers; the engine itself is finer (a request that needs a feature skips
the routes without it, so a tool call still works when only the primary has tools). A
field the table does not know for some route is left out (``ModelProfile`` is partial).
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.language_models import ModelProfile

from resilient_llm import Capabilities, Provider

__all__ = ["common_capabilities", "profile"]


def common_capabilities(providers: Sequence[Provider], model: str | None) -> Capabilities:
    """What every route can take; ``model`` replaces the first route's model (``model=``)."""
    each = [
        Capabilities.for_model(model if index == 0 and model else p.model, p.capabilities)
        for index, p in enumerate(providers)
    ]
    return Capabilities.common(each)


def profile(caps: Capabilities) -> ModelProfile:
    """``caps`` in ``ModelProfile``'s terms, known fields only."""
    fields = {
        "max_input_tokens": caps.context_window,
        "max_output_tokens": caps.max_output,
        "tool_calling": caps.tools,
        "tool_choice": caps.tool_choice,
        "structured_output": caps.json_schema,
        "image_inputs": caps.images,
        "image_url_inputs": caps.images,
        "image_tool_message": caps.images,
        "pdf_inputs": caps.documents,
        "pdf_tool_message": caps.documents,
        "audio_inputs": caps.audio,
        "reasoning_output": caps.reasoning,
    }
    # Every family takes and returns text; none of them takes video here (a video block
    # raises before any call).
    given = {k: v for k, v in fields.items() if v is not None}
    out: ModelProfile = {"text_inputs": True, "text_outputs": True, "video_inputs": False}
    out.update(given)  # type: ignore[typeddict-item]
    return out
