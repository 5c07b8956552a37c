"""Reasoning signatures the chaos providers issue and check, as the real APIs do.

A signature names its family and the text it signs, so a provider can tell its own
signature from a foreign or altered one: Anthropic and Gemini answer 400 to a signature
they did not issue, and (for thinking-enabled tool loops and Gemini 3 function calls) to
one that is missing.
"""

from __future__ import annotations

import hashlib

__all__ = ["SKIP_SIGNATURES", "sign", "signed_by"]

# The values Gemini documents for function calls whose signature was never issued to the
# caller (history from another model): they pass its check.
SKIP_SIGNATURES = frozenset(
    {"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"}
)


def sign(family: str, text: str) -> str:
    """The signature ``family`` issues for reasoning ``text``."""
    digest = hashlib.sha256(f"{family}\0{text}".encode()).hexdigest()[:24]
    return f"chaos-{family}-{digest}"


def signed_by(family: str, signature: str) -> bool:
    """Whether ``signature`` is one ``family`` issued (its text is not checked: the
    signature of a block is checked against the block by the wire that has both)."""
    return (
        signature.startswith(f"chaos-{family}-") and len(signature) == len(f"chaos-{family}-") + 24
    )
