"""Side-by-side benchmarks of resilient-llm and the tools users would pick instead.

``make bench`` (or ``python -m benchmarks.run``) runs every system against fresh local chaos
servers with the same plans and seeds, then writes ``benchmarks/results/latest.md`` and its
plots. Nothing here is part of ``make test``: tests never time anything.
"""
