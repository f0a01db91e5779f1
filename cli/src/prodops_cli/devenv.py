"""The development env file that `prodops up` leaves beside its data, and the CLI reads.

`prodops up` writes the settings its services run with (the URLs of the PostgreSQL and NATS it
started, the JWT key, every `PRODOPS_*` variable it was given) to `.prodops/dev.env`, so that
`prodops token`, `migrate`, `outbox republish` and `insights rebuild` run beside it as written,
with no variables to copy. A variable set in the environment wins over the file. `prodops serve`
and `prodops up` never read it: a service takes its settings from its environment alone, so a
leftover development file can never configure one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from prodops.runtime.settings import Settings

DEV_ENV_NAME = "dev.env"
_PREFIX = "PRODOPS_"


def dev_env_path() -> Path:
    """Where `prodops up` leaves its env file: `dev.env` under `PRODOPS_DATA_DIR`."""
    data_dir = os.environ.get(f"{_PREFIX}DATA_DIR") or Settings.model_fields["data_dir"].default
    return Path(data_dir) / DEV_ENV_NAME


def write_dev_env(path: Path, settings: Settings, environ: Mapping[str, str]) -> None:
    """Write `environ`'s `PRODOPS_*` variables and the JWT secret in force, mode 0600."""
    values = {k: v for k, v in environ.items() if k.startswith(_PREFIX)}
    if settings.jwt_secret is not None:
        values[f"{_PREFIX}JWT_SECRET"] = settings.jwt_secret.get_secret_value()
    text = "".join(f"{name}={_quoted(value)}\n" for name, value in sorted(values.items()))
    partial = path.with_name(f".{path.name}.partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    # Created 0600 from the start: the file holds the signing secret.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    partial.replace(path)


def _quoted(value: str) -> str:
    # python-dotenv reads a single-quoted value literally but for these two escapes.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cli_settings() -> Settings:
    """The settings of a CLI command: the environment, then `dev.env` when `prodops up` left one."""
    path = dev_env_path()
    return Settings(_env_file=path if path.is_file() else None)
