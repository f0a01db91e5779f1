"""Every contribution of a workspace's replayed facts at once, and the totals they add up to.

The shares come from the live engine's own rules (contributions.py), fed from memory instead of
one query per group: so a rebuild holds what the live engine would after recomputing every
feedback group and then every item, as `engine.refresh_all` does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from insights import contributions as c
from insights.contributions import Key
from insights.policies import FeedbackWeightPolicy
from insights.replay import WorkspaceFacts

Row = tuple[str, str, str, str, float]  # contributor, metric, target, sub, value


@dataclass
class Shares:
    """A workspace's totals so far, and when its feedback groups expire."""

    totals: dict[Key, list[Any]] = field(default_factory=dict)  # key -> [value, contributors]
    expiries: list[tuple[str, datetime]] = field(default_factory=list)

    def add(self, contributor: str, share: dict[Key, float]) -> Iterator[Row]:
        """One contributor's rows, added to the totals as they are given out."""
        for (metric, target, sub), value in share.items():
            total = self.totals.get((metric, target, sub))
            if total is None:
                self.totals[metric, target, sub] = [value, 1]
            else:
                total[0] += value
                total[1] += 1
            yield contributor, metric, target, sub, value

    def total_rows(self) -> Iterator[tuple[str, str, str, float, int]]:
        """The `total` rows: every key with at least one contributor."""
        for (metric, target, sub), (value, contributors) in self.totals.items():
            yield metric, target, sub, value, contributors


def shares(
    facts: WorkspaceFacts, policy: FeedbackWeightPolicy, now: datetime, found: Shares
) -> Iterator[Row]:
    """Every feedback group's contribution, then every item's (which reads its demand total)."""
    for group_id, members in _groups(facts).items():
        share = _group_share(facts, group_id, members, policy, now)
        if share is None:
            continue
        contributor = f"g:{group_id}"
        yield from found.add(contributor, share.rows)
        if share.expires_at is not None:
            found.expiries.append((contributor, share.expires_at))
    for item_id, item in facts.items.items():
        active = {o for o in item["objective_ids"] if (facts.objectives.get(o) or {}).get("active")}
        demand = found.totals.get(("item_demand", item["key"], ""))
        rows = c.effort_rows(
            item_id, item, [str(o) for o in sorted(active)], demand[0] if demand else None
        )
        yield from found.add(f"i:{item_id}", rows)


def _groups(facts: WorkspaceFacts) -> dict[UUID, list[dict[str, Any]]]:
    groups: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    for f in facts.feedback.values():
        groups[f["group_id"]].append(f)
    return groups


def _group_share(
    facts: WorkspaceFacts,
    group_id: UUID,
    members: list[dict[str, Any]],
    policy: FeedbackWeightPolicy,
    now: datetime,
) -> c.GroupShare | None:
    survivor, counted = c.counted_members(members, group_id, policy, now)
    if survivor is None or not counted:
        return None
    best = c.heaviest_per_account(counted, policy)
    weight = c.group_weight(best, facts.accounts, policy)
    items = [facts.items[facts.item_ids[k]] for k in survivor["item_keys"] if k in facts.item_ids]
    return c.spread(survivor, counted, items, weight, policy=policy, now=now)
