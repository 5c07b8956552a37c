"""LlamaIndex integration for resilient-llm."""
