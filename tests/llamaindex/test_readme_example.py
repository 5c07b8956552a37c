"""The README's LlamaIndex example, self-contained: copy ``readme_example`` as is."""

from __future__ import annotations


def readme_example() -> str:
    import llama_index.core.instrumentation as instrument
    from llama_index.core import Document, MockEmbedding, VectorStoreIndex
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events import BaseEvent

    from llamaindex_resilient import ResilientFailoverEvent, ResilientLLM
    from resilient_llm import BreakerPolicy, Provider, RateLimit, RetryPolicy
    from resilient_llm.chaos import ChaosServer, Plan

    # Local fake providers; OpenAI is down for the whole run.
    with ChaosServer({"openai": Plan(outages=[(0, 1e9)])}) as chaos:
        llm = ResilientLLM(
            providers=[
                Provider(
                    "openai",
                    model="gpt-4o-mini",
                    base_url=chaos.base_url("openai"),
                    api_key="chaos",
                    rate_limit=RateLimit(requests_per_minute=500, tokens_per_minute=200_000),
                ),
                Provider(
                    "anthropic",
                    model="claude-haiku-4-5",
                    base_url=chaos.base_url("anthropic"),
                    api_key="chaos",
                ),
            ],
            retry=RetryPolicy(max_retries=1, base=0.01),
            breaker=BreakerPolicy(failure_threshold=2, cooldown=30.0),
            timeout=30.0,
        )

        class PrintFailovers(BaseEventHandler):
            @classmethod
            def class_name(cls) -> str:
                return "PrintFailovers"

            def handle(self, event: BaseEvent, **kwargs: object) -> None:
                if isinstance(event, ResilientFailoverEvent):
                    print(f"failover {event.route} -> {event.to_route} ({event.reason})")

        root = instrument.get_dispatcher()
        printer = PrintFailovers()
        root.add_event_handler(printer)
        try:
            index = VectorStoreIndex.from_documents(
                [Document(text="Paris is the capital of France.")],
                embed_model=MockEmbedding(embed_dim=8),
            )
            answer = index.as_query_engine(llm=llm).query("What is the capital of France?")
            reply = llm.complete("What is the capital of France?")
            print(reply.text, "answered by", reply.raw["provider"] if reply.raw else None)
        finally:
            root.event_handlers.remove(printer)
            llm.engine.close()
        return str(answer)


def test_readme_example(capsys: object) -> None:
    import pytest

    assert readme_example() == "The capital of France is Paris."
    assert isinstance(capsys, pytest.CaptureFixture)
    out = capsys.readouterr().out
    assert "failover openai -> anthropic (circuit opened)" in out
    assert "answered by anthropic" in out
