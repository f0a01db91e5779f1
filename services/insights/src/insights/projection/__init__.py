"""Events into facts, by one path: pure rules (`rules`, `touch`) and a set-wise store (`store`)."""

from insights.projection.store import apply_events

__all__ = ["apply_events"]
