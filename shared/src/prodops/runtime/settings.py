"""One typed settings object per service, read from `PRODOPS_*` variables and validated at start."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_JWT_SECRET = "prodops-development-secret-do-not-use-in-production"  # noqa: S105
# A Fernet key (32 url-safe base64 bytes) for webhook secrets at rest, outside production only.
DEVELOPMENT_SECRETS_KEY = "cHJvZG9wcy1kZXZlbG9wbWVudC1rZXktZG8tbm90LXU="


class Settings(BaseSettings):
    """Settings shared by every prodops service; each field maps to `PRODOPS_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="PRODOPS_", extra="ignore", frozen=True)

    env: Literal["development", "test", "production"] = Field(
        default="production",
        description="Where this runs: production refuses development secrets and placeholders",
    )
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/prodops",
        description="PostgreSQL; a socket directory works too (`postgresql://USER@/prodops?host=/run/postgresql`)",
    )
    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        description="NATS with JetStream",
    )
    app_role: str = Field(
        default="prodops_app",
        description="PostgreSQL role the services SET ROLE to; it owns no table, so RLS applies",
    )

    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 signing secret of bearer tokens (at least 32 characters in production)",
    )
    jwks_url: str | None = Field(
        default=None, description="JWKS URL of an identity provider's RS256/ES256 signing keys"
    )
    jwt_algorithms: tuple[str, ...] = Field(
        default=("HS256",),
        description='Accepted token algorithms (`["RS256", "ES256"]` when a JWKS URL is set and '
        "this is left alone)",
    )
    jwt_audience: str | None = Field(
        default=None, description="The `aud` every token must carry, when set"
    )
    jwt_issuer: str | None = Field(
        default=None, description="The `iss` every token must carry, when set"
    )

    secrets_key: SecretStr | None = Field(
        default=None,
        description="Fernet key encrypting webhook secrets at rest (required in production)",
    )
    public_url: str | None = Field(
        default=None, description="Base URL callers reach the services at, for webhook URLs"
    )
    source_secret_grace_hours: float = Field(
        default=24.0, ge=0, description="How long a rotated-out webhook secret still verifies"
    )
    delivery_retention_hours: float = Field(
        default=168.0,
        ge=72.0,
        description="How long settled webhook deliveries (and so their dedup keys) are kept",
    )
    webhook_timestamp_tolerance_seconds: float = Field(
        default=300.0, gt=0, description="How far a signed webhook timestamp may be off"
    )
    webhook_source_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long a webhook source's secrets are kept in memory between reads (0: off)",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long shutdown waits for each of its steps (background loops, broker, "
        "database connections) before abandoning it",
    )
    background: bool = Field(
        default=True,
        description="Run the service's background work in this process: the outbox relay, the "
        "event consumers, the webhook normaliser and the periodic jobs. False serves HTTP only "
        "(webhook deliveries are still verified, stored and answered here); a process of the "
        "same service with background work does the rest",
    )
    webhook_normalise_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often stored deliveries left unnormalised (by a stopped process) are "
        "looked for",
    )
    gitlab_api_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        le=8.0,
        description="Budget of one GitLab milestone lookup (all its requests), inside a delivery",
    )
    gitlab_milestone_cache_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How long a GitLab milestone title is trusted before it is read again",
    )

    stream_name: str = Field(
        default="PRODOPS", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The JetStream stream"
    )
    subject_prefix: str = Field(
        default="prodops",
        pattern=r"^[a-z0-9_-]{1,32}$",
        description="First token of every event subject; the stream takes `<prefix>.>`",
    )
    stream_replicas: int = Field(
        default=1, ge=1, le=5, description="Stream replicas (3 on a 3-node JetStream cluster)"
    )
    stream_duplicate_window_seconds: float = Field(
        default=900.0, ge=600.0, description="How long JetStream drops a repeated `Nats-Msg-Id`"
    )

    body_limit_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest request body; a larger one is 413"
    )
    rate_limit_per_second: float = Field(
        default=200.0, ge=0, description="Requests per second per token and replica; 0 disables"
    )
    rate_limit_burst: int = Field(default=400, ge=1, description="Bucket size of the rate limit")
    pool_max_size: int = Field(
        default=20, ge=2, le=500, description="Database connections per service process"
    )
    idempotency_ttl_hours: float = Field(
        default=24.0, gt=0, description="How long the answer to an `Idempotency-Key` is kept"
    )

    outbox_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Events the relay publishes per batch"
    )
    outbox_poll_interval_seconds: float = Field(
        default=1.0, gt=0, description="Relay polling fallback when no NOTIFY arrives"
    )
    outbox_publish_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long the relay waits for JetStream's acks"
    )
    outbox_retention_hours: float = Field(
        default=72.0, gt=0, description="How long sent outbox rows are kept for republishing"
    )

    inbox_retention_hours: float = Field(
        default=168.0,
        ge=24.0,
        description="How long consumed event ids are remembered for deduplication",
    )
    # A batch is what has queued, up to this: small when the consumer keeps up. Behind, a larger
    # batch spreads its once-per-batch work (insights' signal refresh) over more events, which is
    # what lets the consumer catch up (bench/freshness.py). Its cost: a longer transaction, and
    # more to redo on a failure.
    consumer_batch_size: int = Field(
        default=1000, ge=1, le=5_000, description="Most events a consumer applies in one batch"
    )
    consumer_max_deliver: int = Field(
        default=5,
        ge=1,
        description="Times a failing message is delivered before its event is dead-lettered",
    )
    consumer_backoff_seconds: tuple[float, ...] = Field(
        default=(1.0, 5.0, 30.0, 120.0),
        description="Delay before each redelivery of a failed event (the last one repeats)",
    )
    consumer_ack_wait_seconds: float = Field(
        default=60.0, gt=0, description="JetStream's ack wait; longer than a batch can take"
    )
    consumer_max_ack_pending: int = Field(
        default=2000, ge=1, description="Messages a consumer may hold unacknowledged"
    )

    outbound_allow_private_urls: bool = Field(
        default=False,
        description="Allow subscription URLs on private, loopback or link-local addresses",
    )
    outbound_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long one outbound webhook attempt may take in all"
    )
    outbound_retry_base_seconds: float = Field(
        default=10.0, gt=0, description="Shortest delay before an outbound webhook is retried"
    )
    outbound_retry_max_delay_seconds: float = Field(
        default=6 * 3600.0, gt=0, description="Longest delay between two outbound attempts"
    )
    outbound_retry_horizon_hours: float = Field(
        default=26.0,
        gt=0,
        description="How long a dispatch is retried before it fails (at least 24 outside tests)",
    )
    outbound_disable_after_hours: float = Field(
        default=72.0,
        ge=0,
        description="Failing this long without a success disables a subscription",
    )
    outbound_disable_after_failures: int = Field(
        default=10,
        ge=1,
        description="Failed attempts in a row that, with the hours, disable a subscription",
    )
    outbound_poll_interval_seconds: float = Field(
        default=5.0, gt=0, description="Dispatcher polling fallback when no NOTIFY arrives"
    )
    outbound_batch_size: int = Field(
        default=50, ge=1, le=1000, description="Dispatches one dispatcher sends at once"
    )
    outbound_retention_hours: float = Field(
        default=168.0, gt=0, description="How long delivered and failed dispatches are kept"
    )

    insights_tick_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How often insights re-evaluates what moves with time alone (slack, windows)",
    )

    log_level: str = Field(
        default="INFO", description="Log level of the JSON logs on stderr (with trace ids)"
    )
    metrics_enabled: bool = Field(
        default=True, description="Serve Prometheus metrics at `/metrics`"
    )

    host: str = Field(default="127.0.0.1", description="Address the services listen on")
    feedback_port: int = Field(default=8001, description="Port of feedback")
    roadmap_port: int = Field(default=8002, description="Port of roadmap")
    insights_port: int = Field(default=8003, description="Port of insights")
    data_dir: str = Field(
        default=".prodops",
        description="Where `prodops up` keeps PostgreSQL, NATS, logs and `dev.env`",
    )

    @model_validator(mode="after")
    def _refuse_development_secret(self) -> Self:
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else None
        if self.env != "development" and secret == DEVELOPMENT_JWT_SECRET:
            raise ValueError(
                "PRODOPS_JWT_SECRET is the development secret; it is refused unless "
                "PRODOPS_ENV=development"
            )
        if secret is None and self.jwks_url is None:
            if self.env != "development":
                raise ValueError("set PRODOPS_JWT_SECRET (HS256) or PRODOPS_JWKS_URL")
            object.__setattr__(self, "jwt_secret", SecretStr(DEVELOPMENT_JWT_SECRET))
        if secret is not None and len(secret) < 32 and self.env == "production":
            raise ValueError("PRODOPS_JWT_SECRET must be at least 32 characters")
        self._check_secrets_key()
        return self

    @model_validator(mode="after")
    def _check_outbound_horizon(self) -> Self:
        # Receivers count on a day of retries; only the test suite may shrink the horizon.
        if self.outbound_retry_horizon_hours < 24 and self.env != "test":
            raise ValueError("PRODOPS_OUTBOUND_RETRY_HORIZON_HOURS must be at least 24")
        return self

    def _check_secrets_key(self) -> None:
        key = self.secrets_key.get_secret_value() if self.secrets_key else None
        if key == DEVELOPMENT_SECRETS_KEY and self.env == "production":
            raise ValueError("PRODOPS_SECRETS_KEY is the development key; refused in production")
        if key is None:
            if self.env == "production":
                raise ValueError(
                    "set PRODOPS_SECRETS_KEY (a Fernet key: "
                    'python -c "from cryptography.fernet import Fernet; '
                    'print(Fernet.generate_key().decode())")'
                )
            object.__setattr__(self, "secrets_key", SecretStr(DEVELOPMENT_SECRETS_KEY))
