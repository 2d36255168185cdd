"""The Helm chart (deploy/helm/drivetrain) renders the objects of the plain Kubernetes
manifests — the same workloads, commands, probes, ports and volumes — in the fleet profile,
plus the consumer groups' Deployment; its commands and settings are real, and values
substitute where they should. Rendered by ``helm template`` where Helm is installed, and
always by tests/helm_render.py (the few template actions the chart uses)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from helm_render import Chart
from test_deploy_files import (
    BACKBONE_SETTINGS,
    KUBERNETES,
    SECRET_KEYS,
    check_environment,
    parse_command,
)

CHART = KUBERNETES.parent / "helm" / "drivetrain"
#: What the chart adds to a container of the plain manifests.
CHART_ONLY = ("imagePullPolicy",)


def _objects(documents: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, str], dict[str, Any]]:
    return _objects(Chart(CHART).documents())


@pytest.fixture(scope="module")
def plain() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    documents = []
    for resource in kustomization["resources"]:
        documents += [d for d in yaml.safe_load_all((KUBERNETES / resource).read_text()) if d]
    return _objects(documents)


def _without_chart_fields(workload: dict[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(workload)
    copied["metadata"].pop("annotations", None)  # the migration's hook
    for container in copied["spec"]["template"]["spec"]["containers"]:
        for name in CHART_ONLY:
            container.pop(name, None)
    return copied


def test_the_chart_describes_itself() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "drivetrain"
    assert chart["type"] == "application" and chart["version"] and chart["appVersion"]


def test_the_chart_renders_the_objects_of_the_plain_manifests_and_the_consumers(
    rendered: dict[tuple[str, str], dict[str, Any]],
    plain: dict[tuple[str, str], dict[str, Any]],
) -> None:
    assert set(rendered) == (set(plain) - {("Namespace", "drivetrain")}) | {
        ("Deployment", "drivetrain-consume")
    }
    for key, expected in plain.items():
        if key[0] in ("Deployment", "StatefulSet", "Job"):
            assert _without_chart_fields(rendered[key]) == expected, key
        elif key[0] in ("Service", "PersistentVolumeClaim"):
            assert rendered[key] == expected, key
    config = rendered[("ConfigMap", "drivetrain-config")]["data"]
    assert plain[("ConfigMap", "drivetrain-config")]["data"].items() <= config.items()
    assert config["DRIVETRAIN_PROFILE"] == "fleet"
    assert (
        rendered[("Job", "drivetrain-migrate")]["metadata"]["annotations"]["helm.sh/hook"]
        == "pre-install,pre-upgrade"
    )


def test_the_rendered_workloads_run_real_commands_with_real_fleet_settings(
    rendered: dict[tuple[str, str], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = rendered[("ConfigMap", "drivetrain-config")]["data"]
    assert BACKBONE_SETTINGS <= set(config)
    commands = set()
    for (kind, name), workload in rendered.items():
        if kind not in ("Deployment", "StatefulSet", "Job"):
            continue
        for container in workload["spec"]["template"]["spec"]["containers"]:
            commands.add(parse_command(container["args"])[0])
            environment = dict(config)
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference is None:
                    environment[variable["name"]] = variable["value"]
                    continue
                assert (
                    reference["name"] == "drivetrain-secrets" and reference["key"] in SECRET_KEYS
                ), (name, reference)
                environment[variable["name"]] = (  # the fleet profile needs PostgreSQL
                    "postgresql+psycopg://drivetrain:${password}@postgres/drivetrain"
                    if reference["key"] == "database-url"
                    else "${" + reference["key"] + "}"
                )
            settings = check_environment(environment, f"helm {name}", monkeypatch)
            assert settings.profile == "fleet" and settings.backbone_replicas == 3
    assert commands == {"db upgrade", "serve", "worker ingest", "worker dispatch", "worker consume"}


def test_values_substitute_into_the_objects() -> None:
    chart = Chart(
        CHART,
        {
            "ingest.replicas": 7,
            "ingest.group": "ingest-eu",
            "consumers.groups": "security-ops",
            "image": "registry/dt:1.2",
            "lake.storage": "2Ti",
            "settings.DRIVETRAIN_BACKBONE_REPLICAS": "5",
            "settings.DRIVETRAIN_BACKBONE_NAMESPACE": "staging",
        },
    )
    objects = _objects(chart.documents())
    ingest = objects[("StatefulSet", "drivetrain-ingest")]
    assert ingest["spec"]["replicas"] == 7
    (container,) = ingest["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry/dt:1.2"
    assert parse_command(container["args"])[1]["group"] == "ingest-eu"
    (consume,) = objects[("Deployment", "drivetrain-consume")]["spec"]["template"]["spec"][
        "containers"
    ]
    assert parse_command(consume["args"])[1]["groups"] == "security-ops"
    claim = objects[("PersistentVolumeClaim", "drivetrain-lake")]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Ti"
    config = objects[("ConfigMap", "drivetrain-config")]["data"]
    assert config["DRIVETRAIN_BACKBONE_REPLICAS"] == "5"
    assert config["DRIVETRAIN_BACKBONE_NAMESPACE"] == "staging"
    without = _objects(Chart(CHART, {"consumers.enabled": False}).documents())
    assert ("Deployment", "drivetrain-consume") not in without


def test_a_value_the_chart_does_not_define_fails_the_rendering() -> None:
    chart = Chart(CHART)
    del chart.values["ingest"]["replicas"]
    with pytest.raises(AssertionError, match="no value .Values.ingest.replicas"):
        chart.documents()
