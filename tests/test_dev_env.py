"""The `dev.env` that `prodops up` leaves: private, read by the CLI, never by a served process."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from prodops.runtime.settings import Settings
from prodops_cli.commands import _service_settings, app
from prodops_cli.devenv import cli_settings, dev_env_path, write_dev_env

SECRET = "a-secret-of-at-least-thirty-two-characters-it's \\ quoted"


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and an environment without any PRODOPS_* variable."""
    for name in list(os.environ):
        if name.startswith("PRODOPS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(directory: Path, environ: dict[str, str]) -> Path:
    (directory / ".prodops").mkdir(exist_ok=True)
    path = directory / ".prodops" / "dev.env"
    write_dev_env(path, Settings.model_validate({"env": "test", "jwt_secret": SECRET}), environ)
    return path


def test_dev_env_is_readable_by_its_owner_only(directory: Path) -> None:
    path = _write(directory, {"PRODOPS_ENV": "test"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cli_settings_come_from_dev_env_when_the_variables_are_not_set(directory: Path) -> None:
    _write(
        directory,
        {"PRODOPS_ENV": "test", "PRODOPS_NATS_URL": "nats://127.0.0.1:4999", "HOME": "/root"},
    )
    settings = cli_settings()
    assert settings.nats_url == "nats://127.0.0.1:4999"
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == SECRET


def test_a_variable_set_in_the_environment_wins_over_dev_env(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(directory, {"PRODOPS_ENV": "test", "PRODOPS_NATS_URL": "nats://127.0.0.1:4999"})
    monkeypatch.setenv("PRODOPS_NATS_URL", "nats://127.0.0.1:4111")
    assert cli_settings().nats_url == "nats://127.0.0.1:4111"


def test_dev_env_is_looked_for_in_the_data_dir(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRODOPS_DATA_DIR", str(directory / "elsewhere"))
    assert dev_env_path() == directory / "elsewhere" / "dev.env"


def test_without_dev_env_the_cli_asks_for_a_key_outside_development(directory: Path) -> None:
    result = CliRunner().invoke(app, ["token", "--workspace", "acme", "--scope", "admin"])
    assert result.exit_code != 0
    assert "PRODOPS_JWT_SECRET" in result.output


def test_prodops_token_beside_prodops_up_signs_with_its_secret(directory: Path) -> None:
    _write(directory, {"PRODOPS_ENV": "test"})
    result = CliRunner().invoke(
        app, ["token", "--workspace", "acme", "--scope", "feedback:read insights:read"]
    )
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), SECRET, algorithms=["HS256"])
    assert claims["ws"] == "acme"
    assert claims["scope"] == "feedback:read insights:read"


def test_a_served_process_never_reads_dev_env(
    directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(directory, {"PRODOPS_ENV": "test", "PRODOPS_NATS_URL": "nats://127.0.0.1:4999"})
    monkeypatch.setenv("PRODOPS_ENV", "development")
    assert _service_settings().nats_url == Settings.model_fields["nats_url"].default
