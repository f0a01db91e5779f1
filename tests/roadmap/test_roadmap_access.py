"""Items, launches and objectives alike: unknown ones are 404 problems, a read token changes
nothing, and another workspace neither sees, changes nor references them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from prodops.runtime.settings import Settings
from support import Call, answers, assert_problem, auth, posted

UNKNOWN = "0190d3a4-0000-7000-8000-000000000000"


@dataclass(frozen=True)
class Resource:
    """One roadmap resource, as these tests create, address and change it."""

    collection: str
    created: dict[str, Any]
    # What a POST that creates another one sends, and what a PATCH sends.
    other: dict[str, Any]
    renamed: str
    # The fields of `created` that another workspace must not change.
    kept: tuple[str, ...]
    # The field of another resource that names this one, and the collection of that resource.
    referenced_by: tuple[str, str, dict[str, Any]]
    listed_with: dict[str, str]
    unknown: tuple[str, ...]
    by_key: bool = False
    history: bool = False
    checklist: bool = False

    def addresses(self, one: dict[str, Any]) -> list[str]:
        """The paths of `one`: by id, and by key where it has one."""
        ids = [one["id"], one["key"]] if self.by_key else [one["id"]]
        return [f"{self.collection}/{i}" for i in ids]

    def reads(self, path: str) -> list[Call]:
        """The GETs of one resource at `path`."""
        return [("GET", path), *([("GET", f"{path}/history")] if self.history else [])]

    def changes(self, path: str, patch: dict[str, Any], entry: str | None = None) -> list[Call]:
        """Every change of the resource at `path` (its checklist entry too, when given)."""
        found: list[Call] = [("PATCH", path, patch)]
        if self.checklist:
            found.append(("PUT", f"{path}/checklist", {"entries": []}))
        if entry is not None:
            found.append(("PATCH", f"{path}/checklist/{entry}", {"done": True}))
        return [*found, ("DELETE", path)]


ITEMS = Resource(
    collection="/v1/items",
    created={"title": "Export", "area": "secret"},
    other={"title": "x"},
    renamed="title",
    kept=("title",),
    referenced_by=("/v1/items", "parent_id", {"title": "x"}),
    listed_with={"area": "secret"},
    unknown=("/v1/items/ITEM-404", f"/v1/items/{UNKNOWN}"),
    by_key=True,
    history=True,
)
LAUNCHES = Resource(
    collection="/v1/launches",
    created={"key": "SPRING", "name": "Spring release", "checklist": [{"title": "QA"}]},
    other={"key": "X", "name": "x"},
    renamed="name",
    kept=("name", "checklist"),
    referenced_by=("/v1/items", "launch_id", {"title": "x"}),
    listed_with={},
    unknown=("/v1/launches/NOPE", f"/v1/launches/{UNKNOWN}"),
    by_key=True,
    checklist=True,
)
OBJECTIVES = Resource(
    collection="/v1/objectives",
    created={"name": "Grow"},
    other={"name": "x"},
    renamed="name",
    kept=("name",),
    referenced_by=("/v1/objectives", "parent_id", {"name": "x"}),
    listed_with={},
    unknown=(f"/v1/objectives/{UNKNOWN}",),
)
RESOURCES = pytest.mark.parametrize(
    "resource",
    [
        pytest.param(ITEMS, id="items"),
        pytest.param(LAUNCHES, id="launches"),
        pytest.param(OBJECTIVES, id="objectives"),
    ],
)


def entry_of(one: dict[str, Any]) -> str | None:
    """The id of the first checklist entry of a launch; None for other resources."""
    checklist = one.get("checklist")
    return str(checklist[0]["id"]) if checklist else None


@RESOURCES
async def test_unknown_resource_is_a_404_problem(
    client: httpx.AsyncClient, resource: Resource, headers: dict[str, str]
) -> None:
    patch = {resource.renamed: "x"}
    for path in resource.unknown:
        calls = [*resource.reads(path), *resource.changes(path, patch)]
        for answer in await answers(client, headers, *calls):
            assert_problem(answer, 404)


@RESOURCES
async def test_read_only_token_cannot_write_resources(
    settings: Settings, workspace: str, client: httpx.AsyncClient, resource: Resource
) -> None:
    one = await posted(client, auth(settings, workspace), resource.collection, resource.created)
    path = resource.addresses(one)[-1]
    reader = auth(settings, workspace, "roadmap:read")
    assert (await client.get(path, headers=reader)).status_code == 200
    writes = resource.changes(path, {resource.renamed: "x"}, entry_of(one))
    for answer in await answers(
        client, reader, ("POST", resource.collection, resource.other), *writes
    ):
        assert_problem(answer, 403)


@RESOURCES
async def test_workspace_a_cannot_see_or_touch_workspace_b_resources(
    settings: Settings, workspace: str, client: httpx.AsyncClient, resource: Resource
) -> None:
    mine = auth(settings, workspace)
    theirs = auth(settings, f"b-{workspace}"[:63])
    one = await posted(client, mine, resource.collection, resource.created)
    for path in resource.addresses(one):
        reads = resource.reads(path)
        changes = resource.changes(path, {resource.renamed: "Mine now"}, entry_of(one))
        for answer in await answers(client, theirs, *reads, *changes):
            assert answer.status_code == 404, answer.text
    collection, field, body = resource.referenced_by
    referring = await client.post(collection, headers=theirs, json={**body, field: one["id"]})
    assert referring.status_code == 422
    listed = await client.get(resource.collection, headers=theirs, params=resource.listed_with)
    assert listed.json()["items"] == []
    untouched = (await client.get(resource.addresses(one)[0], headers=mine)).json()
    assert [untouched[k] for k in ("version", *resource.kept)] == [
        1,
        *(one[k] for k in resource.kept),
    ]
