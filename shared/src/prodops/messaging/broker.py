"""The NATS JetStream connection of a service: one FastStream broker and the PRODOPS stream."""

from __future__ import annotations

from faststream.nats import NatsBroker, StorageType, StreamConfig
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from prodops.runtime.settings import Settings


def create_broker(settings: Settings, *, service: str) -> NatsBroker:
    """A broker that is not connected yet; the service's lifespan starts it."""
    return NatsBroker(
        settings.nats_url,
        name=f"prodops-{service}",
        # Reconnect forever: the broker may restart, and the outbox keeps every event meanwhile.
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        logger=None,
    )


def jetstream(broker: NatsBroker) -> JetStreamContext:
    """The JetStream context of a connected broker."""
    js: JetStreamContext = broker.config.connection_state.stream
    return js


def stream_config(settings: Settings) -> StreamConfig:
    """The one stream that carries every prodops event."""
    return StreamConfig(
        name=settings.stream_name,
        subjects=[f"{settings.subject_prefix}.>"],
        storage=StorageType.FILE,
        num_replicas=settings.stream_replicas,
        duplicate_window=settings.stream_duplicate_window_seconds,
    )


async def ensure_stream(js: JetStreamContext, settings: Settings) -> None:
    """Create the stream, or bring an existing one to the configured settings."""
    config = stream_config(settings)
    try:
        await js.stream_info(settings.stream_name)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)
