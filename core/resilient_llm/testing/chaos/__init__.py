"""Local fake LLM providers with scripted faults, for demos, tests, notebooks and benchmarks.

:class:`ChaosServer` serves the OpenAI Chat Completions, Anthropic Messages and Gemini
``generateContent`` wire protocols on 127.0.0.1, each provider under its own path prefix
(the prefix's name picks the protocol: ``anthropic*``, ``gemini*`` / ``google*``, anything
else OpenAI), so the official SDKs are the clients::

    from resilient_llm.testing.chaos import ChaosServer, Fault, Plan

    with ChaosServer({"anthropic": Plan(script=["overloaded", "overloaded"])}) as server:
        client = anthropic.Anthropic(base_url=server.base_url("anthropic"), api_key="x")
        ...  # two 529s, then answers

A :class:`Plan` scripts faults (FIFO), seeded random errors, latency, rpm/tpm quotas and
outage windows; :class:`Fault` is one scripted response. A deterministic brain answers:
facts ("capital of France"), tool calls with arguments taken from the prompt, JSON matching
a requested schema, else an echo. ``server.log`` records every request and its outcome.
"""

from .plan import Fault, Plan
from .server import ChaosServer, RequestRecord, serve

__all__ = ["ChaosServer", "Fault", "Plan", "RequestRecord", "serve"]
