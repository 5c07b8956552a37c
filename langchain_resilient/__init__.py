"""LangChain integration for resilient-llm (see issue: LangChain adapter)."""
