"""The README's LangChain example, runnable as it is printed there."""

from __future__ import annotations


def readme_example() -> str:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from langchain_resilient import ChatResilientLLM
    from resilient_llm import Provider, RetryPolicy
    from resilient_llm.chaos import ChaosServer

    with ChaosServer() as server:  # local fake providers; drop it and base_url for real ones
        server.script("openai", "rate_limit")  # the primary answers 429 once
        model = ChatResilientLLM(
            providers=[
                Provider(
                    "openai", model="gpt-4o-mini", base_url=server.base_url("openai"), api_key="x"
                ),
                Provider(
                    "anthropic",
                    model="claude-haiku-4-5",
                    base_url=server.base_url("anthropic"),
                    api_key="x",
                ),
            ],
            retry=RetryPolicy(max_retries=2),
            timeout=30.0,
        )
        prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
        chain = prompt | model | StrOutputParser()
        answer = chain.invoke({"question": "What is the capital of France?"})
        print(answer)  # The capital of France is Paris.  (answered by Anthropic)
        return answer


def test_readme_example() -> None:
    assert readme_example() == "The capital of France is Paris."
