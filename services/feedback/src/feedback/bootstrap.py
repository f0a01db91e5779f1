"""The feedback service's composition root."""

from __future__ import annotations

from fastapi import FastAPI

from feedback.api import router
from prodops.events import (
    AccountUpserted,
    FeedbackDeleted,
    FeedbackLinked,
    FeedbackMerged,
    FeedbackReceived,
    FeedbackUnlinked,
    FeedbackUpdated,
)
from prodops.service import ServiceSpec, create_service_app
from prodops.settings import Settings

SPEC = ServiceSpec(
    name="feedback",
    description="Customer feedback from support desks and any tool, with accounts and links.",
    routers=[router],
    emits=[
        FeedbackReceived,
        FeedbackUpdated,
        FeedbackLinked,
        FeedbackUnlinked,
        FeedbackMerged,
        FeedbackDeleted,
        AccountUpserted,
    ],
)


def create_app(settings: Settings) -> FastAPI:
    """The feedback app for these settings."""
    return create_service_app(settings, SPEC)
