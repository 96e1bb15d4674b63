"""Grouping real faces of 24 people the served model does not know (``../shared/data/faces24``).

Each person's crops, read here at test time (never copied into the repo), are placed four to a
photo and recognised by the committed default model as the service does; the faces' embeddings
are grouped at the model's grouping threshold. The re-ranking by shared neighbours must join
far more of each person's faces than average linkage on cosine distances alone, without
joining people: the gain docs/clustering.md measures on whole archives, on a smaller one.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

from app.cluster.grouping import drop_small, group, grouping_threshold
from app.config import PROJECT_ROOT, Settings
from app.model.host import load_recognizer
from app.model.unknown import l2_normalise
from tests.conftest import ARTIFACTS
from tests.images import crowd

pytestmark = pytest.mark.slow

FACES24 = PROJECT_ROOT.parent / "shared" / "data" / "faces24"
FACES_EACH = 8
PER_PHOTO = 4


def pairs(labels: list) -> int:
    return sum(n * (n - 1) // 2 for n in Counter(labels).values())


def pairwise(labels: np.ndarray, people: np.ndarray) -> tuple[float, float]:
    """Pairwise precision and recall, faces in no group (-1) counting as apart from everyone."""
    members = [(p, g) for p, g in zip(people.tolist(), labels.tolist(), strict=True) if g >= 0]
    together = pairs([g for _, g in members])
    right = pairs(members)
    return (right / together if together else 1.0), right / pairs(people.tolist())


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray, float]:
    """Every detected face's embedding, its person, and the served model's grouping threshold."""
    assert FACES24.is_dir(), f"the faces24 crops are expected at {FACES24}"
    recognizer = load_recognizer(Settings(_env_file=None, artifacts_dir=ARTIFACTS, classifier_backend="svm"))
    rng = np.random.default_rng(0)
    crops = []
    for person in sorted(p.name for p in FACES24.iterdir() if p.is_dir()):
        files = sorted((FACES24 / person).glob("*.png"))
        crops += [(person, files[i]) for i in rng.permutation(len(files))[:FACES_EACH]]
    crops = [crops[i] for i in rng.permutation(len(crops))]  # people mixed across photos
    embeddings, people = [], []
    for start in range(0, len(crops), PER_PHOTO):
        chosen = crops[start : start + PER_PHOTO]
        images = [np.asarray(Image.open(path).convert("RGB")) for _, path in chosen]
        found = recognizer.recognize_rgb(crowd(images, [140] * len(images)))
        if len(found.faces) == len(chosen):  # faces sorted left to right, as placed
            assert found.features is not None
            embeddings.append(found.features)
            people += [person for person, _ in chosen]
    return np.vstack(embeddings), np.array(people), grouping_threshold(recognizer.manifest)


def test_shared_neighbours_join_far_more_of_each_person_and_no_two_people(faces) -> None:
    embeddings, people, threshold = faces
    assert len(people) >= 0.9 * 24 * FACES_EACH  # the detector found nearly every photo's four faces
    unit = l2_normalise(embeddings.astype(np.float64))
    cosine_alone = drop_small(fcluster(linkage(pdist(unit, "cosine"), "average"), threshold, "distance"))
    before = pairwise(cosine_alone, people)
    after = pairwise(drop_small(group(embeddings, threshold)), people)
    assert after[0] >= 0.98, (before, after)
    assert after[1] >= before[1] + 0.1, (before, after)
