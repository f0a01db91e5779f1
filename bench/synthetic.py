"""Synthetic state-carrying events, shaped like the ones the services emit."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from prodops.contract import (
    Customer,
    Event,
    EventData,
    FeedbackReceived,
    FeedbackSource,
    ItemUpserted,
    LaunchUpserted,
    ObjectiveUpserted,
    TrackerIssueUpserted,
    make_event,
    new_id,
    utcnow,
)


def history_id(workspace: str, kind: str, n: int) -> uuid.UUID:
    """The id `bench.history_sql` gives the n-th fact of a kind (md5 of `ws:kind:n`)."""
    import hashlib

    return uuid.UUID(hashlib.md5(f"{workspace}:{kind}:{n}".encode()).hexdigest())  # noqa: S324 - ids, not security


def feedback(item_key: str, account: str, tag: str) -> FeedbackReceived:
    """A new open feedback item linked to an item, from an account."""
    now = utcnow()
    return FeedbackReceived(
        id=new_id(),
        source=FeedbackSource(provider="api"),
        title="Bench feedback",
        customer=Customer(email=f"{account}@example.com"),
        account_external_id=account,
        tags=[tag],
        item_keys=[item_key],
        created_at=now,
        version=1,
        updated_at=now,
    )


def issue(
    number: int, item_key: str, launch_key: str, *, closed: bool = False
) -> TrackerIssueUpserted:
    """A new GitHub issue linked to an item and a launch."""
    now = utcnow()
    return TrackerIssueUpserted(
        id=new_id(),
        provider="github",
        external_id=str(number),
        key=f"bench/synthetic#{number}",
        title=f"Issue {number}",
        state="closed" if closed else "open",
        kind="bug" if number % 3 == 0 else "task",
        priority="low",
        item_keys=[item_key],
        launch_keys=[launch_key],
        created_at=now - timedelta(days=3),
        closed_at=now if closed else None,
        version=1,
        updated_at=now,
    )


def item(
    item_id: uuid.UUID, key: str, version: int, launch_key: str, objective: uuid.UUID
) -> ItemUpserted:
    """An item in a launch serving an objective; its status alternates with the version."""
    return ItemUpserted(
        id=item_id,
        key=key,
        title=f"Item {key}",
        status="planned" if version % 2 else "in_progress",
        effort=1 + version % 5,
        area=f"area-{version % 10}",
        objective_ids=[objective],
        launch_key=launch_key,
        version=version,
        updated_at=utcnow(),
    )


def envelope(data: EventData, workspace: str) -> Event:
    """The event as a service's outbox would publish it."""
    return make_event(data, service="bench", workspace=workspace)


def stream_of(workspace: str, count: int, seed: int = 7) -> list[Event]:
    """`count` events of one workspace: objectives, launches and items first, then a mix."""
    rng = random.Random(seed)
    launches, items = max(1, count // 1000), max(1, count // 100)
    objectives = [new_id() for _ in range(5)]
    events = [
        envelope(
            ObjectiveUpserted(
                id=o, name=f"O{n}", weight=1 + n, status="active", version=1, updated_at=utcnow()
            ),
            workspace,
        )
        for n, o in enumerate(objectives)
    ]
    events += [
        envelope(
            LaunchUpserted(
                id=new_id(),
                key=f"RB-{n}",
                name=f"Launch {n}",
                status="in_progress",
                version=1,
                updated_at=utcnow(),
            ),
            workspace,
        )
        for n in range(launches)
    ]
    item_ids = [new_id() for _ in range(items)]
    events += [
        envelope(item(i, f"RI-{n}", 1, f"RB-{n % launches}", objectives[n % 5]), workspace)
        for n, i in enumerate(item_ids)
    ]
    for n in range(max(0, count - len(events))):
        j = rng.randrange(items)
        if n % 5 == 0:
            data: EventData = issue(n, f"RI-{j}", f"RB-{j % launches}", closed=n % 2 == 0)
        else:
            data = feedback(
                f"RI-{j}", f"acct-{rng.randrange(max(1, count // 100))}", f"tag-{n % 50}"
            )
        events.append(envelope(data, workspace))
    return events
