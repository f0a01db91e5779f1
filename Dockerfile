# syntax=docker/dockerfile:1
# One image for every prodops service; compose and Kubernetes choose the process with the
# command: `prodops serve feedback|roadmap|insights` or `prodops migrate`.

FROM python:3.11-slim AS builder
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=0 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Third-party dependencies first: this layer is rebuilt only when the lock or a pyproject changes.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/pyproject.toml
COPY cli/pyproject.toml cli/pyproject.toml
COPY services/feedback/pyproject.toml services/feedback/pyproject.toml
COPY services/roadmap/pyproject.toml services/roadmap/pyproject.toml
COPY services/insights/pyproject.toml services/insights/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace

# Then the workspace itself, installed as in development (editable, so each service's
# migrations/ stays beside its package exactly as `prodops migrate` finds it there).
COPY shared shared
COPY cli cli
COPY services services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev \
    && /app/.venv/bin/python -m compileall -q shared/src cli/src services


FROM python:3.11-slim AS runtime
# The uid is fixed so Kubernetes can check runAsNonRoot against a number (deploy/base uses it).
RUN groupadd --system --gid 10001 prodops \
    && useradd --system --uid 10001 --gid prodops --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin prodops
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PRODOPS_HOST=0.0.0.0
WORKDIR /app
# Owned by root and only readable by the service user: the process cannot rewrite its own code.
COPY --from=builder /app /app
USER 10001:10001
EXPOSE 8001 8002 8003
CMD ["prodops", "serve", "feedback"]
