"""The facts rules without a database: version gates, key takeovers, merges, refused events."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
import pytest

from insights.projection import rules
from insights.projection.rules import Facts, UnstorableEventError
from insights.projection.touch import touched
from prodops.contract import (
    Event,
    FeedbackDeleted,
    ItemDeleted,
    ItemUpserted,
    LaunchUpserted,
    new_id,
    utcnow,
)
from signal_events import Builder

WS = "ws-rules"


def _empty_facts(parsed: list[rules.Parsed]) -> Facts:
    """The facts of a store that holds nothing yet, as `store.load` finds them."""
    facts = Facts()
    needs = rules.needs(parsed)
    for aggregate, ids in needs.ids.items():
        for key in ids:
            facts.tables[aggregate].hold(key, None)
    for aggregate, keys in needs.keys.items():
        for key in keys:
            facts.holders[aggregate][key] = None
    return facts


def _folded(*events: Event) -> tuple[Facts, list[rules.Applied]]:
    parsed = rules.parse(events)
    facts = _empty_facts(parsed)
    applied = [change for p in parsed if (change := rules.fold(facts, *p)) is not None]
    return facts, applied


def _rows(facts: Facts, aggregate: str) -> dict[Any, Any]:
    return {ident: row for (_, ident), row in facts.tables[aggregate].now.items() if row}


def _item(b: Builder, key: str, version: int, item_id: UUID, **fields: Any) -> Event:
    values: dict[str, Any] = {"title": key, "status": "planned", **fields}
    return b.event(
        ItemUpserted(id=item_id, key=key, version=version, updated_at=utcnow(), **values)
    )


def _launch(b: Builder, key: str, version: int, launch_id: UUID) -> Event:
    data = LaunchUpserted(
        id=launch_id, key=key, name=key, status="planned", version=version, updated_at=utcnow()
    )
    return b.event(data)


def test_an_older_version_arriving_late_changes_nothing() -> None:
    b = Builder(WS)
    first, second = b.item("A", status="idea"), b.item("A", status="in_progress")
    facts, applied = _folded(second, first)
    assert [i["status"] for i in _rows(facts, "item").values()] == ["in_progress"]
    [gate] = facts.projections.values()
    assert (gate.version, gate.deleted, gate.event_id) == (2, False, second.id)
    assert len(applied) == 1


def test_an_item_takes_its_key_from_the_item_that_held_it() -> None:
    b = Builder(WS)
    old, new = new_id(), new_id()
    facts, _ = _folded(_item(b, "K", 1, old), _item(b, "K", 1, new))
    assert list(_rows(facts, "item")) == [new]
    # The first item's next version takes the key back, whatever the versions.
    facts, _ = _folded(_item(b, "K", 1, old), _item(b, "K", 5, new), _item(b, "K", 2, old))
    assert list(_rows(facts, "item")) == [old]
    # Deleting the item that lost its key deletes nothing else.
    gone = b.event(ItemDeleted(id=new, key="K", version=9))
    facts, _ = _folded(_item(b, "K", 1, new), _item(b, "K", 1, old), gone)
    assert list(_rows(facts, "item")) == [old]
    assert facts.projections[WS, "item", str(new)].deleted is True


def test_an_item_moved_to_another_key_frees_its_old_one() -> None:
    b = Builder(WS)
    item, other = new_id(), new_id()
    facts, _ = _folded(_item(b, "K", 1, item), _item(b, "L", 2, item), _item(b, "K", 1, other))
    assert {row["key"]: ident for ident, row in _rows(facts, "item").items()} == {
        "L": item,
        "K": other,
    }


def test_a_launch_takes_its_key_from_the_launch_that_held_it() -> None:
    b = Builder(WS)
    old, new = new_id(), new_id()
    facts, _ = _folded(_launch(b, "L", 1, old), _launch(b, "L", 1, new))
    assert list(_rows(facts, "launch")) == [new]


def test_a_deleted_feedback_leaves_no_fact_until_a_newer_version_comes() -> None:
    b = Builder(WS)
    received = b.feedback("f", item_keys=["A"])
    feedback_id = b.ids["feedback:f"]
    deleted = b.event(FeedbackDeleted(id=feedback_id, version=2))
    facts, _ = _folded(received, deleted)
    assert _rows(facts, "feedback") == {}
    gate = facts.projections[WS, "feedback", str(feedback_id)]
    assert (gate.version, gate.deleted) == (2, True)
    b.versions["feedback:f"] = 2
    facts, _ = _folded(received, deleted, b.feedback("f", item_keys=["A", "B"]))
    assert _rows(facts, "feedback")[feedback_id]["item_keys"] == ["A", "B"]


def test_a_merged_duplicate_counts_in_its_survivors_group() -> None:
    b = Builder(WS)
    facts, _ = _folded(b.feedback("survivor"), b.feedback("duplicate", merged_into="survivor"))
    survivor = b.ids["feedback:survivor"]
    rows = _rows(facts, "feedback")
    assert {f["group_id"] for f in rows.values()} == {survivor}
    assert rows[b.ids["feedback:duplicate"]]["counted"] is False  # support volume: survivor only


def test_an_item_that_takes_a_key_touches_the_item_it_took_it_from() -> None:
    b = Builder(WS)
    old, new = new_id(), new_id()
    first = _item(b, "K", 1, old, launch_key="L1", area="billing")
    _, applied = _folded(first, _item(b, "K", 1, new))
    touches, look_ups = touched(applied[1:])
    assert touches[WS].items == {old, new}
    assert touches[WS].launches == set()  # the lost item's launch and area are not refreshed
    assert touches[WS].scopes == {""}
    assert look_ups.item_key_groups == {(WS, "K")}


def _with_data(event: Event, **changes: Any) -> Event:
    body = orjson.loads(event.to_bytes())
    body["data"].update(changes)
    return Event.model_validate(body)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"title": "nul \x00 inside"}, "NUL"),  # text cannot hold NUL
        ({"version": 2**31}, "integer range"),  # projection.version is an integer
        ({"shipped_at": "0001-01-01T00:00:00+05:00"}, "timestamptz"),
    ],
)
def test_events_postgres_would_refuse_fail_before_anything_is_written(
    change: dict[str, Any], why: str
) -> None:
    with pytest.raises(UnstorableEventError, match=why):
        _folded(_with_data(Builder(WS).item("A"), **change))


def test_a_feedback_with_an_item_key_twice_fails() -> None:
    with pytest.raises(UnstorableEventError, match="item key twice"):
        _folded(Builder(WS).feedback("f", item_keys=["A", "A"]))


def test_invalid_data_fails() -> None:
    with pytest.raises(ValueError, match="title"):
        _folded(_with_data(Builder(WS).item("A"), title=None))


def test_a_backslash_before_u0000_is_text_postgres_keeps() -> None:
    facts, _ = _folded(_with_data(Builder(WS).item("A"), title="a \\u0000 b"))
    assert [row["title"] for row in _rows(facts, "item").values()] == ["a \\u0000 b"]
