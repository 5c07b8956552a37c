"""resilient-llm: a resilience layer for LLM calls."""
