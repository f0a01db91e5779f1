"""Builders of the events insights consumes, for tests that publish straight to the stream."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from insights.rules.readiness import LinkedIssue
from prodops.contract import (
    CATALOGUE,
    AccountUpserted,
    ChecklistEntry,
    Event,
    EventData,
    FeedbackSource,
    FeedbackUpdated,
    ItemUpserted,
    LaunchUpserted,
    ObjectiveUpserted,
    TrackerIssueUpserted,
    make_event,
    new_id,
    utcnow,
)


class Builder:
    """Events of one workspace, each aggregate's version counted up as the test goes."""

    def __init__(self, workspace: str) -> None:
        self.workspace = workspace
        self.versions: dict[str, int] = {}
        self.ids: dict[str, UUID] = {}

    def _next(self, name: str) -> tuple[UUID, int]:
        self.versions[name] = self.versions.get(name, 0) + 1
        return self.ids.setdefault(name, new_id()), self.versions[name]

    def event(self, data: EventData) -> Event:
        """Wrap data in an envelope from the service that owns it."""
        service = "feedback" if "feedback" in data.TYPE or "account" in data.TYPE else "roadmap"
        return make_event(data, service=service, workspace=self.workspace)

    def objective(self, name: str, weight: float, status: str = "active") -> Event:
        ident, version = self._next(f"objective:{name}")
        return self.event(
            ObjectiveUpserted(
                id=ident,
                name=name,
                weight=weight,
                status=status,
                version=version,
                updated_at=utcnow(),
            )
        )

    def item(self, key: str, *, objectives: tuple[str, ...] = (), **fields: Any) -> Event:
        ident, version = self._next(f"item:{key}")
        values: dict[str, Any] = {"title": key, "status": "planned", **fields}
        return self.event(
            ItemUpserted(
                id=ident,
                key=key,
                objective_ids=[self.ids[f"objective:{o}"] for o in objectives],
                version=version,
                updated_at=utcnow(),
                **values,
            )
        )

    def launch(
        self,
        key: str,
        *,
        items: tuple[str, ...] = (),
        target: date | None = None,
        checklist: tuple[tuple[str, bool], ...] = (),
        status: str = "in_progress",
    ) -> Event:
        ident, version = self._next(f"launch:{key}")
        entries = [
            ChecklistEntry(
                id=self.ids.setdefault(f"entry:{key}:{t}", new_id()),
                title=t,
                category="qa",
                done=done,
            )
            for t, done in checklist
        ]
        return self.event(
            LaunchUpserted(
                id=ident,
                key=key,
                name=f"Launch {key}",
                target_date=target,
                status=status,
                item_keys=list(items),
                checklist=entries,
                version=version,
                updated_at=utcnow(),
            )
        )

    def issue(self, key: str, **fields: Any) -> Event:
        ident, version = self._next(f"issue:{key}")
        values: dict[str, Any] = {
            "provider": "github",
            "title": key,
            "state": "open",
            "kind": "task",
            "created_at": utcnow() - timedelta(days=30),
            **fields,
        }
        return self.event(
            TrackerIssueUpserted(
                id=ident,
                external_id=key,
                key=key,
                version=version,
                updated_at=utcnow(),
                **values,
            )
        )

    def feedback(self, name: str, **fields: Any) -> Event:
        ident, version = self._next(f"feedback:{name}")
        values: dict[str, Any] = {"title": name, "created_at": utcnow(), **fields}
        if "merged_into" in values and isinstance(values["merged_into"], str):
            values["merged_into"] = self.ids[f"feedback:{values['merged_into']}"]
        return self.event(
            FeedbackUpdated(
                id=ident,
                source=FeedbackSource(provider="api"),
                version=version,
                updated_at=utcnow(),
                **values,
            )
        )

    def account(self, external_id: str, arr: float) -> Event:
        _, version = self._next(f"account:{external_id}")
        return self.event(
            AccountUpserted(external_id=external_id, arr=arr, version=version, updated_at=utcnow())
        )

    def deleted(self, kind: str, key: str) -> Event:
        """The delete of an aggregate this builder made (`kind` as in its names), versioned on."""
        ident, version = self._next(f"{kind}:{key}")
        data = CATALOGUE[f"prodops.{'tracker_issue' if kind == 'issue' else kind}.deleted.v1"]
        keyed = {"key": key} if kind in ("item", "launch") else {}
        return self.event(data.model_validate({"id": ident, "version": version, **keyed}))

    def id_of(self, name: str) -> str:
        """The id of an aggregate this builder made, as evidence lists carry it."""
        return str(self.ids[name])


def days_ago(days: float) -> datetime:
    """A moment `days` before now."""
    return utcnow() - timedelta(days=days)


def random_issue_fields(
    rng: random.Random,
    labels: Sequence[str],
    launches: Sequence[str],
    items: Sequence[str],
    closed_days: Sequence[float],
) -> dict[str, Any]:
    """A random issue's readiness fields: up to two each of `labels`, `launches` and `items`."""
    state = rng.choice(("open", "open", "closed"))
    return {
        "state": state,
        "kind": rng.choice(("bug", "bug", "task", "feature")),
        "priority": rng.choice(("urgent", "high", "medium", "low", "none")),
        "labels": rng.sample(list(labels), rng.randint(0, 2)),
        "launch_keys": rng.sample(list(launches), rng.randint(0, 2)),
        "item_keys": rng.sample(list(items), rng.randint(0, 2)),
        "closed_at": days_ago(rng.choice(list(closed_days))) if state == "closed" else None,
    }


def linked_issues(
    b: Builder, issues: Mapping[int, Mapping[str, Any]], launch: str, items: set[str]
) -> list[LinkedIssue]:
    """Issues `acme/shop#<n>` (their fields by n) linked to `launch` or `items`, for readiness."""
    return [
        LinkedIssue(
            b.id_of(f"issue:acme/shop#{n}"),
            f"acme/shop#{n}",
            f["state"],
            f["kind"],
            f["priority"],
            tuple(f["labels"]),
            f["closed_at"],
        )
        for n, f in issues.items()
        if launch in f["launch_keys"] or items & set(f["item_keys"])
    ]
