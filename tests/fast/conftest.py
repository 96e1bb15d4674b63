"""The fast tier: the real app over HTTP, serving a small real model built in memory.

The model is a Haar detector, raw pixels and a logistic regression fitted on a few
shared photos of three people: it loads in well under a second and needs no network
file, so tests about HTTP behaviour (status codes, problem bodies, the API key, the
seed's answer shape) run in seconds. It is put in through the app's own dependency
(``app.dependency_overrides[model_host]``), the way any part of the service is swapped.
``make test`` still runs every test against the committed models as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from app.api import deps
from app.artifact.manifest import ClassInfo, Manifest, StageSpec
from app.backends.sklearn_model import SklearnClassifier
from app.config import Settings
from app.main import create_app
from app.model.host import ModelHost
from app.model.recognizer import Recognizer
from app.pipeline.decode import decode_image
from app.pipeline.detect import create_detector
from app.pipeline.features import create_extractor
from tests.conftest import DATA_DIR

PEOPLE = ("billy_boyd", "elijah_wood", "sean_astin")
PHOTOS_PER_PERSON = 4


@dataclass(frozen=True)
class SmallModel:
    recognizer: Recognizer
    #: A photo the model was fitted on, in which Haar finds the face.
    photo: bytes


@pytest.fixture(scope="session")
def small() -> SmallModel:
    """Fitted on the largest Haar face of the first photos (in name order) of each person."""
    detector, extractor = create_detector("haar"), create_extractor("pixels", {"size": 24})
    rows, labels, fitted = [], [], []
    for person in PEOPLE:
        for path in sorted((DATA_DIR / person).iterdir())[:PHOTOS_PER_PERSON]:
            rgb = decode_image(path.read_bytes())
            faces = detector.detect(rgb)
            if faces:
                face = max(faces, key=lambda f: f.box.area)
                rows.append(extractor.extract([extractor.crop(rgb, face)])[0])
                labels.append(person)
                fitted.append(path)
    assert set(labels) == set(PEOPLE), "every person needs a face Haar can find"
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(np.stack(rows), labels)
    manifest = Manifest(
        backend="svm",
        version="fast-tier",
        created=datetime.now(UTC),
        classes=[ClassInfo(id=p, name=p.replace("_", " ").title()) for p in PEOPLE],
        detector=StageSpec(name=detector.name, params=detector.params),
        features=StageSpec(name=extractor.name, params=extractor.params),
        classifier={"winner": "logistic_regression"},
    )
    recognizer = Recognizer(manifest, detector, extractor, SklearnClassifier(estimator))
    return SmallModel(recognizer, fitted[0].read_bytes())


def fast_client(model: Recognizer | None, tmp_path: Path, **overrides) -> Iterator[TestClient]:
    """The app with ``model`` served (None: a host that has loaded nothing yet)."""
    settings = Settings(
        _env_file=None, artifacts_dir=tmp_path, model_watch_interval_s=0, **overrides
    )  # an empty artifacts folder: the app's own background load fails at once and is ignored
    app = create_app(settings)
    host = ModelHost(settings)
    if model is not None:
        host.serve(model)
    app.dependency_overrides[deps.model_host] = lambda: host
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def client(small: SmallModel, tmp_path: Path) -> Iterator[TestClient]:
    yield from fast_client(small.recognizer, tmp_path)
