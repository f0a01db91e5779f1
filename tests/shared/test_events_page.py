"""`docs/events.md` names every event type of the catalogue and every field of its data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prodops.contract import CATALOGUE, EventData

PAGE = Path(__file__).parents[2] / "docs" / "events.md"


def _sections() -> dict[str, str]:
    """Each type's section of the page (from its heading to the next), by type."""
    parts = re.split(r"^### `([^`]+)`.*$", PAGE.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_events_page_has_a_section_for_every_catalogued_type() -> None:
    sections = _sections()
    assert set(CATALOGUE) <= set(sections)


@pytest.mark.parametrize("event_type", sorted(CATALOGUE))
def test_the_events_page_names_every_field_of_a_types_data(event_type: str) -> None:
    model: type[EventData] = CATALOGUE[event_type]
    table = _sections()[event_type]
    named = set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.MULTILINE))
    fields = {field.alias or name for name, field in model.model_fields.items()}
    assert fields <= named, f"{event_type}: {sorted(fields - named)} not on the page"


def test_the_events_page_says_what_changed_for_tracker_issue_upserted() -> None:
    changes = PAGE.read_text().partition("## Changes")[2]
    assert "tracker_issue.upserted" in changes
    assert "`blocker`" in changes
    assert "readiness policy" in changes
