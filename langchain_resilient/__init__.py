"""LangChain integration for resilient-llm: ``ChatResilientLLM``, a ``BaseChatModel``.

Install with ``pip install "resilient-llm[langchain]"``.
"""

from __future__ import annotations

from .chat_models import ChatResilientLLM

__all__ = ["ChatResilientLLM"]
