"""docker-compose.yml and the Dockerfile agree with the settings and the process contract."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from prodops.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("feedback", "roadmap", "insights")
PRODOPS_COMMANDS = {("prodops", "migrate"), *(("prodops", "serve", name) for name in SERVICES)}
# Values the person running compose must supply (`${VAR:?...}`), as a test stands in for them.
REQUIRED_INPUTS = {
    "PRODOPS_JWT_SECRET": "compose-test-secret-" + "x" * 32,
    "PRODOPS_SECRETS_KEY": "Y29tcG9zZS10ZXN0LWtleS0wMTIzNDU2Nzg5YWJjZGU=",
}
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def compose() -> dict[str, Any]:
    """docker-compose.yml as compose reads it (YAML merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def built_services() -> dict[str, dict[str, Any]]:
    """The services that run the project's own image."""
    return {name: spec for name, spec in services().items() if "build" in spec}


def environment(spec: dict[str, Any]) -> dict[str, str]:
    raw = spec.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def command(spec: dict[str, Any]) -> tuple[str, ...]:
    raw = spec.get("command", ())
    return tuple(shlex.split(raw) if isinstance(raw, str) else raw)


def interpolate(value: str) -> str:
    """Resolve `${VAR}`, `${VAR:-default}` and `${VAR:?error}` as compose does from a bare shell."""

    def resolve(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if op and op.endswith("-"):
            return arg
        if name in REQUIRED_INPUTS:
            return REQUIRED_INPUTS[name]
        raise AssertionError(f"${{{name}}} has neither a default nor a test value")

    return INTERPOLATION.sub(resolve, value)


def published_ports(spec: dict[str, Any]) -> list[tuple[int, int]]:
    """(host, container) pairs from the short "[ip:]host:container" or the long syntax."""
    pairs = []
    for port in spec.get("ports", []):
        if isinstance(port, dict):
            pairs.append((int(port["published"]), int(port["target"])))
        else:
            *_, host, container = str(port).split(":")
            pairs.append((int(host), int(container)))
    return pairs


def final_stage(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile's last stage, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    instructions = [
        (word.upper(), args.strip())
        for word, _, args in (raw.strip().partition(" ") for raw in joined.splitlines())
        if word and not word.startswith("#")
    ]
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_every_prodops_variable_is_a_settings_field() -> None:
    fields = {name.lower() for name in Settings.model_fields}
    variables = [(name, v) for name, spec in services().items() for v in environment(spec)]
    stage = final_stage((ROOT / "Dockerfile").read_text())
    image_env = [shlex.split(args) for word, args in stage if word == "ENV"]
    variables += [("Dockerfile", item.split("=")[0]) for items in image_env for item in items]
    assert any(variable.startswith("PRODOPS_") for _, variable in variables)
    for where, variable in variables:
        if variable.startswith("PRODOPS_"):
            field = variable.removeprefix("PRODOPS_").lower()
            assert field in fields, f"{where} sets {variable}, which Settings does not read"


def test_each_service_environment_starts_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, spec in built_services().items():
        with monkeypatch.context() as patch:
            for variable in [v for v in os.environ if v.startswith("PRODOPS_")]:
                patch.delenv(variable)
            for variable, value in environment(spec).items():
                patch.setenv(variable, interpolate(value))
            settings = Settings()
        assert settings.env == "production", name
        assert urlsplit(settings.database_url).hostname == "postgres", name
        assert urlsplit(settings.nats_url).hostname == "nats", name
        assert settings.host == "0.0.0.0", f"{name} would listen on loopback only"


@pytest.mark.parametrize("variable", ["PRODOPS_JWT_SECRET", "PRODOPS_SECRETS_KEY"])
def test_secrets_must_come_from_the_person_running_compose(variable: str) -> None:
    for name, spec in built_services().items():
        secret = environment(spec)[variable]
        match = INTERPOLATION.fullmatch(secret)
        assert match, f"{name} has a literal {variable} committed"
        assert match["op"] == ":?", f"{name} must refuse to start without {variable}"


def test_built_services_run_the_prodops_command() -> None:
    commands = {name: command(spec) for name, spec in built_services().items()}
    for name, argv in commands.items():
        assert argv in PRODOPS_COMMANDS, f"{name} runs {argv}"
    assert sorted(commands.values()) == sorted(PRODOPS_COMMANDS), "one process per command"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_publishes_its_settings_port(service: str) -> None:
    [(name, spec)] = [
        (name, spec)
        for name, spec in built_services().items()
        if command(spec) == ("prodops", "serve", service)
    ]
    default_port = Settings.model_fields[f"{service}_port"].default
    assert environment(spec)[f"PRODOPS_{service.upper()}_PORT"] == str(default_port)
    assert published_ports(spec) == [(default_port, default_port)]
    assert environment(spec)["OTEL_SERVICE_NAME"] == service
    probe = " ".join(spec["healthcheck"]["test"])
    assert f":{default_port}/readyz" in probe, f"{name} health check does not ask /readyz"


def test_services_wait_for_healthy_infrastructure_and_migrations() -> None:
    for name, spec in services().items():
        depends_on = spec.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for infrastructure in ("postgres", "nats"):
            if infrastructure in depends_on:
                assert depends_on[infrastructure]["condition"] == "service_healthy", name
        if command(spec)[:2] == ("prodops", "serve"):
            assert {"postgres", "nats"} <= depends_on.keys(), name
            [migrate] = [n for n, s in services().items() if command(s) == ("prodops", "migrate")]
            assert depends_on[migrate]["condition"] == "service_completed_successfully", name
    for infrastructure in ("postgres", "nats"):
        assert services()[infrastructure]["healthcheck"]["test"], infrastructure


def test_migrations_run_once_after_postgres_is_healthy() -> None:
    [spec] = [s for s in services().values() if command(s) == ("prodops", "migrate")]
    assert spec["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert spec.get("restart", "no") == "no", "a finished migration must not be restarted"


def test_postgres_is_version_16_or_newer() -> None:
    image = services()["postgres"]["image"]
    repository, _, tag = image.partition(":")
    assert repository.rsplit("/", 1)[-1] == "postgres"
    major = re.match(r"\d+", tag)
    assert major, f"postgres image {image} does not pin a major version"
    assert int(major[0]) >= 16


def test_nats_runs_jetstream_on_a_volume() -> None:
    nats = services()["nats"]
    argv = command(nats)
    assert "-js" in argv
    store_dir = argv[argv.index("-sd") + 1]
    mounted = {str(volume).split(":")[1] for volume in nats["volumes"]}
    assert store_dir in mounted, "JetStream would keep its streams in the container layer"
    monitor_port = argv[argv.index("-m") + 1]
    assert f":{monitor_port}/healthz" in " ".join(nats["healthcheck"]["test"])


def test_traces_go_to_the_collector_over_otlp_http() -> None:
    collector = services()["otel-collector"]
    [config_mount] = [v for v in collector["volumes"] if "otel-collector.yaml" in v]
    config = yaml.safe_load((ROOT / config_mount.split(":")[0]).read_text())
    receiver_port = int(config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].split(":")[-1])
    assert "otlp" in config["service"]["pipelines"]["traces"]["receivers"]
    for name, spec in built_services().items():
        endpoint = urlsplit(environment(spec)["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert (endpoint.hostname, endpoint.port) == ("otel-collector", receiver_port), name


def test_image_runs_as_a_non_root_user() -> None:
    stage = final_stage((ROOT / "Dockerfile").read_text())
    users = [args for word, args in stage if word == "USER"]
    assert users, "the final stage runs as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    exposed = {int(port) for word, args in stage if word == "EXPOSE" for port in args.split()}
    assert exposed == {Settings.model_fields[f"{name}_port"].default for name in SERVICES}
