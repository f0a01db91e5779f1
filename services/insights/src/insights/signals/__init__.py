"""Signals from the facts: alignment and launch readiness, with history, emitted on change."""
