"""The roadmap service's composition root."""

from __future__ import annotations

from fastapi import FastAPI

from prodops.contract import EMITTED_BY
from prodops.runtime.app import ServiceSpec, create_service_app
from prodops.runtime.settings import Settings
from prodops.webhooks.endpoint import WebhookEndpoint
from prodops.webhooks.intake import Intake
from prodops.webhooks.sources import sources_router
from roadmap import api, items, launches, objectives, source_access, tracker_api
from roadmap.gitlab_milestones import MilestoneTitles
from roadmap.tracker import PROVIDERS, normalise_deliveries


def create_app(settings: Settings) -> FastAPI:
    """The roadmap app for these settings."""
    # GitLab milestone titles are read, before the normaliser's transaction, with tokens these
    # settings' key unseals.
    milestones = MilestoneTitles(settings)
    intake = Intake(normalise_deliveries, prepare=milestones.prepare)
    spec = ServiceSpec(
        name="roadmap",
        description="Objectives, roadmap items, launches and the issue trackers that deliver them.",
        routers=[
            objectives.router,
            items.router,
            launches.router,
            api.router,
            tracker_api.router,
            sources_router(providers=PROVIDERS),
            source_access.router,
        ],
        emits=EMITTED_BY["roadmap"],
        background=intake.background,
        webhooks=WebhookEndpoint(PROVIDERS, intake),
    )
    return create_service_app(settings, spec)
