"""The roadmap service's composition root."""

from __future__ import annotations

from fastapi import FastAPI

from prodops.events import (
    ItemDeleted,
    ItemUpserted,
    LaunchDeleted,
    LaunchUpserted,
    ObjectiveDeleted,
    ObjectiveUpserted,
    TrackerIssueDeleted,
    TrackerIssueUpserted,
)
from prodops.service import ServiceSpec, create_service_app
from prodops.settings import Settings

SPEC = ServiceSpec(
    name="roadmap",
    description="Objectives, roadmap items, launches and the issue trackers that deliver them.",
    emits=[
        ObjectiveUpserted,
        ObjectiveDeleted,
        ItemUpserted,
        ItemDeleted,
        LaunchUpserted,
        LaunchDeleted,
        TrackerIssueUpserted,
        TrackerIssueDeleted,
    ],
)


def create_app(settings: Settings) -> FastAPI:
    """The roadmap app for these settings."""
    return create_service_app(settings, SPEC)
