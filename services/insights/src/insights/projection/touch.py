"""What a batch's changes touch: the groups, items, keys, launches and scopes to refresh.

Pure, from each applied event's rows before and after. A few touches depend on facts the batch
did not load (the feedback groups of an account or an item key, the items of an objective):
those are named as look-ups, which `store` answers from the facts as written. Reading them after
the batch rather than at each event finds the same set: every row that moves in or out of such
a look-up during the batch is touched by its own event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from insights.projection.facts import Touch
from insights.projection.rules import Applied, Row


@dataclass
class LookUps:
    """Touches still to be read from the facts, each a (workspace, value) pair."""

    account_groups: set[tuple[str, str]] = field(default_factory=set)  # by external id
    item_key_groups: set[tuple[str, str]] = field(default_factory=set)  # by item key
    objective_items: set[tuple[str, UUID]] = field(default_factory=set)  # by objective id

    def __bool__(self) -> bool:
        return bool(self.account_groups or self.item_key_groups or self.objective_items)


def touched(applied: Iterable[Applied]) -> tuple[dict[str, Touch], LookUps]:
    """Each workspace's touch by `applied`, and the look-ups that complete it."""
    touches: dict[str, Touch] = {}
    look_ups = LookUps()
    for change in applied:
        touch = touches.setdefault(change.workspace, Touch())
        _RULES[change.aggregate](touch, look_ups, change)
    return touches, look_ups


def _feedback(touch: Touch, _: LookUps, change: Applied) -> None:
    for row in _rows(change):
        touch.groups.add(row["group_id"])
        touch.item_keys.update(row["item_keys"])


def _account(_: Touch, look_ups: LookUps, change: Applied) -> None:
    look_ups.account_groups.add((change.workspace, change.data.external_id))  # type: ignore[attr-defined]


def _objective(touch: Touch, look_ups: LookUps, change: Applied) -> None:
    look_ups.objective_items.add((change.workspace, change.data.id))  # type: ignore[attr-defined]
    touch.all_scopes = True


def _item(touch: Touch, look_ups: LookUps, change: Applied) -> None:
    data: Any = change.data
    touch.items.add(data.id)
    # An item that lost its key to this one is refreshed as an item, its launch and area not.
    touch.items.update(change.freed)
    touch.item_keys.add(data.key)
    for row in _rows(change):
        touch.launches.update(k for k in (row["launch_key"],) if k)
        touch.scopes.update(s for s in ("", row["area"]) if s is not None)
    # Feedback on the item is covered or not, and in its area or not, by the item's state:
    # only a change of that state touches the item's feedback.
    if change.before is None or _coverage(change.before) != _coverage(change.after):
        look_ups.item_key_groups.add((change.workspace, data.key))


def _coverage(item: Row | None) -> tuple[Any, ...]:
    return () if item is None else (item["status"], item["area"], item["shipped_at"])


def _launch(touch: Touch, _: LookUps, change: Applied) -> None:
    touch.launches.add(change.data.key)  # type: ignore[attr-defined]
    if change.before is not None:
        touch.launches.add(change.before["key"])


def _issue(touch: Touch, _: LookUps, change: Applied) -> None:
    for row in _rows(change):
        touch.launches.update(row["launch_keys"])
        touch.item_keys.update(row["item_keys"])


def _rows(change: Applied) -> list[Row]:
    return [row for row in (change.before, change.after) if row is not None]


_Rule = Callable[[Touch, LookUps, Applied], None]
# By aggregate (`facts.AGGREGATES`): an upsert and a delete of one touch alike.
_RULES: dict[str, _Rule] = {
    "feedback": _feedback,
    "account": _account,
    "objective": _objective,
    "item": _item,
    "launch": _launch,
    "tracker_issue": _issue,
}
