"""What users' own tests may import: the chaos providers and a fake clock."""

from ..clock import FakeClock

__all__ = ["FakeClock"]
