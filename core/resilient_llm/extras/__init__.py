"""Opt-in extras over the engine: the response cache and OpenTelemetry."""
