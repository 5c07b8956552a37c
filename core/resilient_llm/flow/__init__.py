"""The decision core: the effects it yields, one call's flow, and what a call holds.

It imports only :mod:`resilient_llm.policies`, the neutral types, events and errors; it
waits for nothing, calls nothing and reads no clock. :mod:`resilient_llm.run` performs what
it decides.
"""
