"""The deployment files agree with the app: routes probed, settings named, ports and names wired.

No cluster runs here, so these checks hold the manifests to what can drift without
anyone noticing: a probe on a route that was renamed, an env var Settings no longer
reads (pydantic-settings would silently ignore it), a port or label that no longer
matches, a volume that is not read-only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from app.config import PROJECT_ROOT, Settings
from app.main import create_app
from tests.conftest import ARTIFACTS

DEPLOY = PROJECT_ROOT / "deploy"
K8S = DEPLOY / "k8s"


def documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [d for d in yaml.safe_load_all(handle) if d is not None]


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/k8s, by kind (one of each)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in documents(path):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path
            assert doc["kind"] not in found, f"two {doc['kind']} objects"
            found[doc["kind"]] = doc
    assert set(found) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PersistentVolumeClaim"}
    return found


@pytest.fixture(scope="module")
def container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (only,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = documents(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert [i["newTag"] for i in kustomization["images"] if i["name"] == "hobbit-classifier"] == ["svm"]


def test_probes_hit_the_apps_health_routes(container: dict[str, Any]) -> None:
    """Each probe's path is a route of the real app, which answers it as the probe needs.

    The app is built but not started (no lifespan, so no model loads): a route that
    does not exist answers 404, /livez answers 200 at once and /readyz 503 until the
    model is ready, which is what lets the startup and readiness probes wait for it.
    """
    kinds = ("startupProbe", "readinessProbe", "livenessProbe")
    probes = {name: container[name]["httpGet"] for name in kinds}
    assert probes["livenessProbe"]["path"] == "/livez"
    assert probes["readinessProbe"]["path"] == probes["startupProbe"]["path"] == "/readyz"
    named_ports = {p["name"] for p in container["ports"]}
    unstarted = TestClient(create_app(Settings(_env_file=None, artifacts_dir=ARTIFACTS)))
    expected = {"/livez": 200, "/readyz": 503}
    for name, probe in probes.items():
        assert probe["port"] in named_ports, name
        assert unstarted.get(probe["path"]).status_code == expected[probe["path"]], name


def test_env_vars_are_settings_the_app_reads(container: dict[str, Any]) -> None:
    env = {e["name"]: e["value"] for e in container["env"]}
    unknown = {name for name in env if name.lower() not in Settings.model_fields}
    assert not unknown, f"not fields of app/config.py Settings: {unknown}"
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})  # values parse too
    assert settings.classifier_backend == "svm"
    assert int(env["PORT"]) == {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert env["HOST"] == "0.0.0.0"  # reachable by the kubelet and the Service, not loopback only


def test_artifacts_come_from_a_read_only_volume(
    manifests: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    mount = mounts[env["ARTIFACTS_DIR"]]
    assert mount["mountPath"] == "/artifacts" and mount["readOnly"] is True
    volumes = {v["name"]: v for v in manifests["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    claim = volumes[mount["name"]]["persistentVolumeClaim"]
    assert claim["readOnly"] is True
    pvc = manifests["PersistentVolumeClaim"]
    assert claim["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == ["ReadOnlyMany"]
    # The root filesystem is read-only, so uploads spooled to /tmp need a writable volume.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]


def memory_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * {"Mi": 2**20, "Gi": 2**30}[unit]


def test_resources_are_set_and_consistent(container: dict[str, Any]) -> None:
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert memory_bytes(requests["memory"]) <= memory_bytes(limits["memory"])
    assert float(requests["cpu"]) <= float(limits["cpu"])
    # The limit must hold the measured peak (1.75 GB with two 40-megapixel photos in flight).
    assert memory_bytes(limits["memory"]) >= 1_750_000_000


def test_service_and_hpa_point_at_the_deployment(manifests: dict[str, dict[str, Any]]) -> None:
    deployment = manifests["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    service = manifests["Service"]["spec"]
    assert service["selector"].items() <= pod_labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {p["targetPort"] for p in service["ports"]} <= {p["name"] for p in container["ports"]}
    hpa = manifests["HorizontalPodAutoscaler"]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]


def test_compose_override_wires_the_proxy_to_the_api_service() -> None:
    (override,) = documents(DEPLOY / "compose.replicas.yml")
    proxy = override["services"]["proxy"]
    assert set(override["services"]) == {"proxy"}  # the api service itself comes from docker-compose.yml
    assert "api" in proxy["depends_on"]
    source, target, mode = proxy["volumes"][0].split(":")
    conf = PROJECT_ROOT / source  # compose resolves paths against the first file's folder, the root
    assert conf.is_file() and target == "/etc/nginx/conf.d/default.conf" and mode == "ro"
    text = conf.read_text()
    assert "server api:8000 " in text  # the compose service name and the app's PORT in the image
    listen = re.search(r"listen (\d+);", text)
    assert listen and proxy["ports"][0].endswith(f":{listen[1]}")
    base = PROJECT_ROOT / "docker-compose.yml"
    if not base.is_file():
        pytest.skip("docker-compose.yml is not in this checkout")
    (compose,) = documents(base)
    # docs/scaling.md scales api by giving HOST_PORT a range; that needs this exact variable.
    assert any("${HOST_PORT" in str(p) for p in compose["services"]["api"]["ports"])
