"""What a GitLab hook names of its milestone, and where GitLab's API is asked for its title."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from roadmap.gitlab_milestones import ancestor_groups
from roadmap.webhooks.gitlab import MilestoneRef, milestone_ref

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "gitlab"


def _payload(milestone_id: int | None, name: str = "issue") -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    payload["object_attributes"]["milestone_id"] = milestone_id
    return payload


def test_gitlab_milestone_ref_names_the_project_and_milestone_of_issues_and_merge_requests() -> (
    None
):
    ref = MilestoneRef(project_id=1, project_path="gitlabhq/gitlab-test", milestone_id=7)
    assert milestone_ref("Issue Hook.update", _payload(7)) == ref
    assert milestone_ref("Merge Request Hook.open", _payload(7, "merge_request")) == ref


@pytest.mark.parametrize(
    ("event_type", "change"),
    [
        ("Issue Hook.update", {"milestone_id": None}),
        ("Issue Hook.update", {"milestone_id": "7"}),
        ("Issue Hook.update", {"milestone": {"id": 7, "title": "LAUNCH-7"}}),
        ("Note Hook.create", {}),
    ],
)
def test_gitlab_milestone_ref_is_none_when_there_is_nothing_to_look_up(
    event_type: str, change: dict[str, Any]
) -> None:
    payload = _payload(7)
    payload["object_attributes"].update(change)
    assert milestone_ref(event_type, payload) is None


def test_a_project_sits_in_its_groups_nearest_first() -> None:
    assert ancestor_groups("acme/platform/shop") == ["acme/platform", "acme"]
    assert ancestor_groups("alone") == []
