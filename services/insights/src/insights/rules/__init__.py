"""The rules of the signals, pure: alignment and readiness scores, reasons, policies, no I/O."""
