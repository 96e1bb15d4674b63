"""deploy/kuberay agrees with the app and the lock: the job's command, settings, volume and Ray version.

No Kubernetes cluster runs here, so, as tests/test_deploy.py does for deploy/k8s, these
checks hold the RayJob to what can drift unnoticed: a flag the CLI no longer takes, an
env var Settings does not read, an artifacts mount the actors cannot see, a Ray version
on the cluster that is not the one the driver was tested with.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import PROJECT_ROOT, Settings
from tests.conftest import ARTIFACTS

KUBERAY = PROJECT_ROOT / "deploy" / "kuberay"


@pytest.fixture(scope="module")
def job() -> dict[str, Any]:
    with (KUBERAY / "rayjob.yaml").open() as handle:
        (only,) = [d for d in yaml.safe_load_all(handle) if d is not None]
    assert (only["apiVersion"], only["kind"]) == ("ray.io/v1", "RayJob")
    return only


def pod_specs(job: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = job["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [group["template"]["spec"] for group in groups]


def test_ray_versions_are_the_locked_one(job: dict[str, Any]) -> None:
    """The cluster's Ray (the image's base) is the Ray the driver is installed with from constraints.txt."""
    (locked,) = re.findall(r"^ray==(\S+)$", (PROJECT_ROOT / "constraints.txt").read_text(), re.MULTILINE)
    (base,) = re.findall(
        r"^ARG RAY_IMAGE=rayproject/ray:(\S+?)-py311", (KUBERAY / "Dockerfile").read_text(), re.M
    )
    assert job["spec"]["rayClusterSpec"]["rayVersion"] == locked == base


def test_entrypoint_is_a_command_the_cli_takes(job: dict[str, Any], tmp_path: Path) -> None:
    """The job's command line, with local paths for its URIs, gets as far as the Ray engine's checks.

    SRC becomes a missing folder and DST a local folder of the same format. argparse would
    refuse an unknown flag with its usage message and the local engine a .parquet DST:
    reaching "is not a folder" means every flag parsed and the Ray engine ran its checks,
    without starting a cluster or reaching the network.
    """
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:4] == ["python", "-m", "app", "classify"]
    assert argv[argv.index("--engine") + 1] == "ray"
    src, dst = argv[4], argv[argv.index("--out") + 1]
    missing = tmp_path / "no-photos-here"
    local = {src: str(missing), dst: str(tmp_path / Path(dst).name)}
    env = {**os.environ, "ARTIFACTS_DIR": str(ARTIFACTS), "CLASSIFIER_BACKEND": "svm"}
    args = [local.get(a, a) for a in argv[1:]]
    done = subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {missing} is not a folder"


def test_env_vars_are_settings_the_app_reads(job: dict[str, Any]) -> None:
    (head,) = pod_specs(job)[0]["containers"]
    env = {e["name"]: e["value"] for e in head["env"]}
    unknown = {name for name in env if name.lower() not in Settings.model_fields}
    assert not unknown, f"not fields of app/config.py Settings: {unknown}"
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
    assert settings.classifier_backend == "svm"


def test_every_pod_mounts_the_artifacts_read_only_where_the_driver_says(job: dict[str, Any]) -> None:
    """The driver sends its ARTIFACTS_DIR to the actors, so every pod must hold the model at that path."""
    (head,) = pod_specs(job)[0]["containers"]
    artifacts_dir = {e["name"]: e["value"] for e in head["env"]}["ARTIFACTS_DIR"]
    with (PROJECT_ROOT / "deploy" / "k8s" / "artifacts-pvc.yaml").open() as handle:
        claim_name = yaml.safe_load(handle)["metadata"]["name"]
    for spec in pod_specs(job):
        (container,) = spec["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == artifacts_dir]
        assert mount["readOnly"] is True
        volume = {v["name"]: v for v in spec["volumes"]}[mount["name"]]["persistentVolumeClaim"]
        assert volume == {"claimName": claim_name, "readOnly": True}
        assert container["image"] == "hobbit-classifier:ray"


def memory_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * {"Mi": 2**20, "Gi": 2**30}[unit]


def test_workers_are_sized_for_one_actor_per_cpu(job: dict[str, Any]) -> None:
    """Whole CPUs (Ray counts the limit; an actor takes one), and memory for a model per actor."""
    head_params = job["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]
    assert head_params["num-cpus"] == "0"  # no actor on the head: it runs the driver
    for group in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        (container,) = group["template"]["spec"]["containers"]
        requests, limits = container["resources"]["requests"], container["resources"]["limits"]
        cpus = int(limits["cpu"])
        assert cpus >= 1 and requests["cpu"] == limits["cpu"]
        assert memory_bytes(limits["memory"]) >= cpus * memory_bytes("1Gi")
