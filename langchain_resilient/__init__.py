"""LangChain integration for resilient-llm: ``ChatResilientLLM``, a ``BaseChatModel``.

Install with ``pip install "resilient-llm[langchain]"``.
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as exc:
    raise ModuleNotFoundError(
        "langchain_resilient needs LangChain (langchain-core): "
        "pip install 'resilient-llm[langchain]'",
        name=exc.name,
    ) from exc

from .chat_models import ChatResilientLLM

__all__ = ["ChatResilientLLM"]
