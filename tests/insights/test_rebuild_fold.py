"""The rebuild's fold of the stream: the facts the live engine would hold after the same events."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson

from insights.replay import Replay, WorkspaceFacts
from prodops.contract import (
    Event,
    FeedbackDeleted,
    FeedbackLinked,
    ItemDeleted,
    ItemUpserted,
    LaunchUpserted,
    new_id,
    utcnow,
)
from signal_events import Builder

WS = "ws-fold"


def _folded(*events: Event | bytes) -> Replay:
    replay = Replay()
    for event in events:
        replay.add(event if isinstance(event, bytes) else event.to_bytes())
    return replay


def _facts(replay: Replay) -> WorkspaceFacts:
    return replay.workspaces[WS]


def _item(b: Builder, key: str, version: int, item_id: UUID) -> Event:
    data = ItemUpserted(
        id=item_id, key=key, title=key, status="planned", version=version, updated_at=utcnow()
    )
    return b.event(data)


def _launch(b: Builder, key: str, version: int, launch_id: UUID) -> Event:
    data = LaunchUpserted(
        id=launch_id, key=key, name=key, status="planned", version=version, updated_at=utcnow()
    )
    return b.event(data)


def test_an_older_version_arriving_late_changes_nothing() -> None:
    b = Builder(WS)
    first, second = b.item("A", status="idea"), b.item("A", status="in_progress")
    facts = _facts(_folded(second, first))
    assert [i["status"] for i in facts.items.values()] == ["in_progress"]
    [(version, deleted, event_id)] = facts.projection.values()
    assert (version, deleted, event_id) == (2, False, second.id)


def test_an_item_takes_its_key_from_the_item_that_held_it() -> None:
    b = Builder(WS)
    old, new = new_id(), new_id()
    facts = _facts(_folded(_item(b, "K", 1, old), _item(b, "K", 1, new)))
    assert list(facts.items) == [new]
    assert facts.item_ids == {"K": new}
    # The first item's next version takes the key back, whatever the versions.
    facts = _facts(_folded(_item(b, "K", 1, old), _item(b, "K", 5, new), _item(b, "K", 2, old)))
    assert list(facts.items) == [old]
    # Deleting the item that lost its key deletes nothing else.
    gone = b.event(ItemDeleted(id=new, key="K", version=9))
    facts = _facts(_folded(_item(b, "K", 1, new), _item(b, "K", 1, old), gone))
    assert list(facts.items) == [old]
    assert facts.projection["item", str(new)][1] is True


def test_an_item_moved_to_another_key_frees_its_old_one() -> None:
    b = Builder(WS)
    item, other = new_id(), new_id()
    facts = _facts(_folded(_item(b, "K", 1, item), _item(b, "L", 2, item), _item(b, "K", 1, other)))
    assert facts.item_ids == {"L": item, "K": other}


def test_a_launch_takes_its_key_from_the_launch_that_held_it() -> None:
    b = Builder(WS)
    old, new = new_id(), new_id()
    facts = _facts(_folded(_launch(b, "L", 1, old), _launch(b, "L", 1, new)))
    assert list(facts.launches) == [new]
    assert facts.launch_ids == {"L": new}


def test_a_deleted_feedback_leaves_no_fact_until_a_newer_version_comes() -> None:
    b = Builder(WS)
    received = b.feedback("f", item_keys=["A"])
    feedback_id = b.ids["feedback:f"]
    deleted = b.event(FeedbackDeleted(id=feedback_id, version=2))
    facts = _facts(_folded(received, deleted))
    assert facts.feedback == {}
    assert list(facts.feedback_items()) == []
    assert facts.projection["feedback", str(feedback_id)][:2] == (2, True)
    b.versions["feedback:f"] = 2
    facts = _facts(_folded(received, deleted, b.feedback("f", item_keys=["A", "B"])))
    assert [key for _, key, *_ in facts.feedback_items()] == ["A", "B"]


def test_a_merged_duplicate_counts_in_its_survivors_group() -> None:
    b = Builder(WS)
    facts = _facts(_folded(b.feedback("survivor"), b.feedback("duplicate", merged_into="survivor")))
    survivor = b.ids["feedback:survivor"]
    assert {f["group_id"] for f in facts.feedback.values()} == {survivor}
    duplicate = facts.feedback[b.ids["feedback:duplicate"]]
    assert duplicate["counted"] is False  # support volume counts the survivor alone


def test_other_events_are_skipped_and_a_second_copy_applies_once() -> None:
    b = Builder(WS)
    item = b.item("A")
    linked = b.event(FeedbackLinked(feedback_id=new_id(), item_key="A", by="api", version=1))
    replay = _folded(item, linked, item)
    report = replay.report
    assert (report.messages, report.applied, report.skipped, report.failed) == (3, 1, 2, 0)
    assert list(replay.claims) == [item.id]


def _with_data(event: Event, **changes: Any) -> bytes:
    body = orjson.loads(event.to_bytes())
    body["data"].update(changes)
    return orjson.dumps(body)


def test_events_postgres_would_refuse_fail_as_they_do_live() -> None:
    b = Builder(WS)
    refused = [
        b"not json",
        _with_data(b.item("A"), title=None),  # invalid data
        _with_data(b.item("B"), title="nul \x00 inside"),  # text cannot hold NUL
        _with_data(b.item("C"), version=2**31),  # projection.version is an integer
        b.feedback("f", item_keys=["A", "A"]).to_bytes(),  # feedback_item's primary key
    ]
    replay = _folded(*refused, b.item("D"))
    report = replay.report
    assert (report.applied, report.failed) == (1, 5)
    assert [i["key"] for i in _facts(replay).items.values()] == ["D"]
    assert len(replay.claims) == 1


def test_a_backslash_before_u0000_is_text_postgres_keeps() -> None:
    b = Builder(WS)
    replay = _folded(_with_data(b.item("A"), title="a \\u0000 b"))
    assert replay.report.applied == 1
