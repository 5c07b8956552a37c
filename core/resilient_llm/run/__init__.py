"""The only code that waits, calls providers or awaits a state store: the sync and async
drivers that answer the flow's effects, hedging, stream stall limits, bulkheads, call scopes.
"""
