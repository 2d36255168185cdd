"""The deployment files hold together: the Compose file, the Kubernetes manifests and the
Dockerfile name only real ``drivetrain`` commands with valid options, real settings with
values that validate, services, volumes, secrets and files that exist, and probes and
scrape ports the processes really serve."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from typer.main import get_command

from drivetrain.core.settings import Settings, load_settings

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
IMAGE = "drivetrain:latest"
#: The probes each orchestrator asks, and what they must be.
PROBES = {"/livez", "/readyz"}
#: Keys of the secret drivetrain-secrets, which the operator creates (docs/deploy.md).
#: The fleet profile's backbone settings: each one is set in the fleet deployments (Compose,
#: the Helm chart), so an operator finds it there rather than in the settings' source.
BACKBONE_SETTINGS = {f"DRIVETRAIN_{name.upper()}" for name in Settings.model_fields
                     if name.startswith("backbone_")}
SECRET_KEYS = {"database-url", "auth-secret", "audit-key", "broker-password", "metrics-token",
               "cloud-signing.pem"}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@functools.cache
def _cli() -> Any:
    from drivetrain.cli import app

    return get_command(app)


def parse_command(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``drivetrain <argv>`` as the command line would, without running it: the
    command's path and its parameters; fails the test on an unknown command or option, or a
    value the option refuses. (Typer's click may be its own copy: duck-typed here.)"""
    command = _cli()
    path: list[str] = []
    args = list(argv)
    while hasattr(command, "list_commands"):
        assert args, f"drivetrain {' '.join(path)} needs a subcommand"
        name = args.pop(0)
        sub = command.get_command(command.context_class(command), name)
        assert sub is not None, f"drivetrain {' '.join([*path, name])} is not a command"
        command, path = sub, [*path, name]
    try:
        context = command.make_context(" ".join(path), args)
    except Exception as e:
        if not hasattr(e, "format_message"):
            raise
        pytest.fail(f"drivetrain {' '.join(argv)}: {e.format_message()}")
    return " ".join(path), dict(context.params)


@functools.cache
def _routes() -> frozenset[str]:
    from drivetrain.api.routers import ROUTERS

    return frozenset(prefix + r.path for prefix, router in ROUTERS for r in router.routes
                     if isinstance(r, APIRoute))


def check_environment(environment: Mapping[str, str], where: str,
                      monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Every ``DRIVETRAIN_*`` variable is a setting, and together they validate (a Compose
    interpolation with a default, ``${NAME:-default}``, stands for its default, as Compose
    gives it where ``.env`` leaves the variable out; the others for secrets of 40 characters)."""
    names = set(Settings.model_fields)
    unknown = [k for k in environment
               if k.startswith("DRIVETRAIN_") and k.removeprefix("DRIVETRAIN_").lower() not in names]
    assert unknown == [], f"{where}: not settings: {unknown}"
    for key in list(__import__("os").environ):
        if key.startswith("DRIVETRAIN_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DRIVETRAIN_CONFIG", str(DEPLOY / "no-such-file.toml"))
    for key, value in environment.items():
        if key.startswith("DRIVETRAIN_"):
            monkeypatch.setenv(key, _interpolated(str(value)))
    return load_settings()


def _interpolated(value: str) -> str:
    return re.sub(r"\$\{[^}]+\}", lambda m: _stand_in(m.group(0)), value)


def _stand_in(interpolation: str) -> str:
    default = re.fullmatch(r"\$\{\w+:-([^}]*)\}", interpolation)
    return default.group(1) if default else "s" * 40


# --- Compose ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = _load(DEPLOY / "compose.yaml")
    assert isinstance(document, dict)
    return document


def _drivetrain_services(compose: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, service in compose["services"].items():
        if service.get("image") == IMAGE:
            yield name, service


def test_compose_runs_the_fleet_deployment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    images = {s.get("image", "").split(":")[0] for s in services.values()}
    assert {"eclipse-mosquitto", "postgres", "nats", "minio/minio", "drivetrain",
            "prom/prometheus"} <= images
    nats = [n for n, s in services.items() if s.get("image", "").startswith("nats:")]
    assert len(nats) == 3
    for name in nats:  # a JetStream cluster: each node routes to the two others
        command = services[name]["command"]
        assert "--jetstream" in command and "--cluster_name" in command
        routes = command[command.index("--routes") + 1].split(",")
        assert {r.split("//")[1].split(":")[0] for r in routes} == set(nats) - {name}
    commands = {parse_command(s["command"])[0] for _, s in _drivetrain_services(compose)}
    assert commands == {"db upgrade", "serve", "worker ingest", "worker dispatch",
                        "worker consume"}


def test_compose_references_only_what_it_declares(compose: dict[str, Any]) -> None:
    services, volumes = compose["services"], set(compose.get("volumes") or {})
    secrets = set(compose.get("secrets") or {})
    for name, service in services.items():
        for dependency in service.get("depends_on") or {}:
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared volume {source}"
        for secret in service.get("secrets") or []:
            source = secret if isinstance(secret, str) else secret["source"]
            assert source in secrets, f"{name} uses undeclared secret {source}"


def test_compose_drivetrain_services_use_real_settings_and_options(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_clients = []
    for name, service in _drivetrain_services(compose):
        assert BACKBONE_SETTINGS <= set(service["environment"]), name
        settings = check_environment(service["environment"], f"compose {name}", monkeypatch)
        assert settings.deployment == "production" and settings.metrics_token is not None
        command, params = parse_command(service["command"])
        if command in ("worker ingest", "worker dispatch"):
            assert params["metrics_port"] == 9464 and params["metrics_host"] == "0.0.0.0"
            ingest_clients.append(params["client_id"])
    # each worker keeps its own MQTT session across restarts
    assert len(ingest_clients) >= 2 and len(set(ingest_clients)) == len(ingest_clients)


def test_compose_health_checks_and_scrapes_reach_what_the_processes_serve(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    api = services["api"]
    _, params = parse_command(api["command"])
    check = " ".join(api["healthcheck"]["test"])
    assert f"http://127.0.0.1:{params['port']}/readyz" in check and "/readyz" in _routes()
    prometheus = _load(DEPLOY / "prometheus" / "prometheus.yml")
    for job in prometheus["scrape_configs"]:
        assert job["metrics_path"] == "/metrics"
        assert job["authorization"]["credentials_file"] == "/etc/prometheus/metrics-token"
        for target in job["static_configs"][0]["targets"]:
            host, port = target.split(":")
            _, target_params = parse_command(services[host]["command"])
            assert int(port) == target_params.get("metrics_port", target_params.get("port"))


# --- Kubernetes ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    kustomization = _load(KUBERNETES / "kustomization.yaml")
    documents = []
    for resource in kustomization["resources"]:
        documents += [d for d in yaml.safe_load_all((KUBERNETES / resource).read_text()) if d]
    listed = {KUBERNETES / r for r in kustomization["resources"]}
    assert listed == set(KUBERNETES.glob("*.yaml")) - {KUBERNETES / "kustomization.yaml"}
    return documents


def _workloads(manifests: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for document in manifests:
        if document["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield document


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return containers


def test_kubernetes_workloads_run_real_commands_with_real_settings(
    manifests: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {d["metadata"]["name"]: d["data"] for d in manifests if d["kind"] == "ConfigMap"}
    claims = {d["metadata"]["name"] for d in manifests if d["kind"] == "PersistentVolumeClaim"}
    commands = set()
    for workload in _workloads(manifests):
        name = workload["metadata"]["name"]
        spec = workload["spec"]
        if workload["kind"] != "Job":
            assert spec["selector"]["matchLabels"].items() <= \
                spec["template"]["metadata"]["labels"].items(), name
        for volume in spec["template"]["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name
            if "secret" in volume:
                assert volume["secret"]["secretName"] == "drivetrain-secrets"
                assert {i["key"] for i in volume["secret"]["items"]} <= SECRET_KEYS
        for container in _containers(workload):
            assert container["image"] == IMAGE
            commands.add(parse_command(container["args"])[0])
            environment: dict[str, str] = {}
            for source in container.get("envFrom", []):
                environment |= config[source["configMapRef"]["name"]]
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference is not None:
                    assert reference["name"] == "drivetrain-secrets", name
                    assert reference["key"] in SECRET_KEYS, (name, reference)
                    environment[variable["name"]] = "${" + reference["key"] + "}"
                else:
                    environment[variable["name"]] = variable["value"]
            settings = check_environment(environment, f"kubernetes {name}", monkeypatch)
            assert settings.deployment == "production"
    assert commands == {"db upgrade", "serve", "worker ingest", "worker dispatch"}


def test_kubernetes_probes_and_scrape_annotations_match_what_is_served(
    manifests: list[dict[str, Any]],
) -> None:
    routes = _routes()
    scraped = set()
    for workload in _workloads(manifests):
        template = workload["spec"]["template"]
        annotations = template["metadata"].get("annotations", {})
        for container in _containers(workload):
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            command, params = parse_command(container["args"])
            served = params.get("metrics_port") or params.get("port")
            if command == "serve":
                assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
                assert PROBES <= routes
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert ports[container[probe]["httpGet"]["port"]] == served
            if command.startswith("worker "):
                assert params["metrics_host"] == "0.0.0.0"
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe in container:
                        assert ports[container[probe]["tcpSocket"]["port"]] == served
            if annotations.get("prometheus.io/scrape") == "true":
                assert annotations["prometheus.io/path"] == "/metrics"
                assert int(annotations["prometheus.io/port"]) == served
                scraped.add(command)
    assert scraped == {"serve", "worker ingest", "worker dispatch"}


def test_kubernetes_services_select_a_workload_and_name_its_ports(
    manifests: list[dict[str, Any]],
) -> None:
    workloads = [w for w in _workloads(manifests) if w["kind"] != "Job"]
    for service in (d for d in manifests if d["kind"] == "Service"):
        selector = service["spec"]["selector"].items()
        [target] = [w for w in workloads
                    if selector <= w["spec"]["template"]["metadata"]["labels"].items()]
        names = {p["name"] for c in _containers(target) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, service["metadata"]["name"]


def test_the_secret_keys_are_documented() -> None:
    page = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for key in SECRET_KEYS:
        assert f"--from-literal={key}=" in page or f"--from-file={key}=" in page, key


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_builds_the_kustomization() -> None:
    built = subprocess.run(["kubectl", "kustomize", str(KUBERNETES)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert built.returncode == 0, built.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(built.stdout) if d}
    assert {"Deployment", "StatefulSet", "Job", "Service", "ConfigMap"} <= kinds


# --- the image ----------------------------------------------------------------------------------
def test_the_image_runs_drivetrain_with_extras_that_exist() -> None:
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    entrypoint = [line for line in lines if line.startswith("ENTRYPOINT")]
    command = [line for line in lines if line.startswith("CMD")]
    assert entrypoint == ['ENTRYPOINT ["drivetrain"]']
    assert parse_command(yaml.safe_load(command[0].removeprefix("CMD ")))[0] == "serve"
    installs = [line for line in lines if "pip install" in line]
    extras = re.findall(r'"\.\[([^\]]+)\]"', " ".join(installs))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert extras and set(extras[0].split(",")) <= set(project["optional-dependencies"])
    assert any(line.split()[:2] == ["USER", "10001"] for line in lines)
