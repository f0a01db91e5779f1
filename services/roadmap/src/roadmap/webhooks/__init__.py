"""Issue-tracker webhooks: one module per tracker, each with a `PROVIDER` and `snapshots()`.

`PROVIDER` implements `prodops.webhooks.provider.Provider`
(verify as the tracker signs, identify the
delivery, answer the setup handshake); `snapshots(event_type, payload)` maps one delivery to the
`TrackerIssueSnapshot`s it describes (empty for an event roadmap does not act on: `ignored`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from roadmap.tracker_snapshot import TrackerIssueSnapshot

Snapshots = Callable[[str, Any], list[TrackerIssueSnapshot]]
