"""The feedback service's composition root."""

from __future__ import annotations

from fastapi import FastAPI

from feedback import accounts, imports
from feedback.api import router
from feedback.consumers import consumers
from feedback.tickets import PROVIDERS, normalise_deliveries
from prodops.contract import EMITTED_BY
from prodops.runtime.app import ServiceSpec, create_service_app
from prodops.runtime.settings import Settings
from prodops.webhooks.endpoint import WebhookEndpoint
from prodops.webhooks.intake import Intake
from prodops.webhooks.sources import sources_router

IMPORT_PATH = "/v1/feedback/import"


def create_app(settings: Settings) -> FastAPI:
    """The feedback app for these settings."""
    # Each app stores and normalises its own deliveries.
    intake = Intake(normalise_deliveries)
    spec = ServiceSpec(
        name="feedback",
        description="Customer feedback from support desks and any tool, with accounts and links.",
        routers=[
            # Routes are matched in order: the import route before `/v1/feedback/{id}`, which
            # would read `import` as an id.
            imports.router,
            router,
            accounts.router,
            sources_router(providers=PROVIDERS),
        ],
        emits=EMITTED_BY["feedback"],
        consumers=consumers,
        # NDJSON imports stream far past the JSON body limit; the route bounds each line itself.
        unlimited_body_paths=[IMPORT_PATH],
        background=intake.background,
        webhooks=WebhookEndpoint(PROVIDERS, intake),
    )
    return create_service_app(settings, spec)
