"""A model trained on the dlib embedding (``--features dlib``) serves over HTTP with dlib's defaults."""

from __future__ import annotations

import pytest

from app.artifact.manifest import load_manifest
from app.model.same_person import default_thresholds
from tests.conftest import make_client
from tests.test_api import classify
from tests.training.conftest import copy_photos

pytestmark = pytest.mark.slow

TRAINED = 3


def test_a_dlib_model_trains_on_three_photos_each_and_names_the_others(
    tmp_path, shared_photos, run_cli
) -> None:
    data = copy_photos(tmp_path / "data", {p: paths[:TRAINED] for p, paths in shared_photos.items()})
    code, err = run_cli(data, "--features", "dlib", "--test-size", "0")
    assert code == 0, err
    manifest = load_manifest(tmp_path / "artifacts" / "svm" / "v1")
    assert manifest.features.name == "dlib" and manifest.features.params == {"margin": 0.2}
    defaults = default_thresholds("dlib", {"margin": 0.2})
    assert defaults is not None
    assert manifest.unknown.threshold == defaults["by_photos_per_person"][TRAINED]

    answers = []
    for client in make_client(artifacts_dir=tmp_path / "artifacts"):
        for person, paths in shared_photos.items():
            for path in paths[TRAINED:]:
                response = classify(client, path.read_bytes())
                assert response.status_code == 200, response.text
                faces = response.json()["faces"]
                largest = max(faces, key=lambda f: f["box"]["width"] * f["box"]["height"])
                answers.append(largest["label"] == person)
    assert sum(answers) >= 0.85 * len(answers), f"{sum(answers)} of {len(answers)}"
