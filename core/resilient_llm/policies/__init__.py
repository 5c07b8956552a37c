"""Policies: values and bookkeeping that take ``now`` and decide, with no waiting and no I/O.

Retry backoff, the circuit breaker, the limiter, provider hints, the retry budget, adaptive
limits, model capabilities and token estimates. Internal: the public names are re-exported
by :mod:`resilient_llm`.
"""
