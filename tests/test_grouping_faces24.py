"""Grouping real faces of 24 people the served model does not know (``../shared/data/faces24``).

Each person's crops, read here at test time (never copied into the repo), are placed four to a
photo and recognised by the committed default model as the service does, and each face is
embedded by the companion embedding as ``python -m app cluster`` does (``companion_rows``); the
faces are grouped at the model's grouping threshold. The re-ranking by shared neighbours must
join far more of each person's faces than average linkage on cosine distances alone, and the
served embedding joined with its companion more than the served one alone, without joining
people: the gains docs/clustering.md measures on whole archives, on a smaller one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

from app.cluster.embedding import Joint, joint_for
from app.cluster.faces import companion_rows
from app.cluster.grouping import GROUPING_RATIO, JOINED_REACH, drop_small, group, grouping_threshold
from app.config import PROJECT_ROOT, Settings
from app.model.host import load_recognizer
from app.model.recognizer import UNKNOWN
from app.model.unknown import l2_normalise
from tests.conftest import ARTIFACTS
from tests.images import crowd

pytestmark = pytest.mark.slow

FACES24 = PROJECT_ROOT.parent / "shared" / "data" / "faces24"
FACES_EACH = 10
PER_PHOTO = 4


def pairs(labels: list) -> int:
    return sum(n * (n - 1) // 2 for n in Counter(labels).values())


def pairwise(labels: np.ndarray, people: np.ndarray) -> tuple[float, float]:
    """Pairwise precision and recall, faces in no group (-1) counting as apart from everyone."""
    members = [(p, g) for p, g in zip(people.tolist(), labels.tolist(), strict=True) if g >= 0]
    together = pairs([g for _, g in members])
    right = pairs(members)
    return (right / together if together else 1.0), right / pairs(people.tolist())


@dataclass(frozen=True)
class Faces:
    """Every detected face's served and companion embeddings, its person, and how the model groups."""

    served: np.ndarray
    companion: np.ndarray
    people: np.ndarray
    joint: Joint
    #: The served model's unknown threshold: its same-person distance on the served embedding alone.
    unknown: float
    #: The model's grouping threshold, on the joined embedding's scale (``grouping_threshold``).
    grouping: float


@pytest.fixture(scope="module")
def faces() -> Faces:
    assert FACES24.is_dir(), f"the faces24 crops are expected at {FACES24}"
    recognizer = load_recognizer(Settings(_env_file=None, artifacts_dir=ARTIFACTS, classifier_backend="svm"))
    joint = joint_for(recognizer.manifest)
    assert joint is not None and recognizer.manifest.unknown.threshold is not None
    companion = joint.load()
    rng = np.random.default_rng(0)
    crops = []
    for person in sorted(p.name for p in FACES24.iterdir() if p.is_dir()):
        files = sorted((FACES24 / person).glob("*.png"))
        crops += [(person, files[i]) for i in rng.permutation(len(files))[:FACES_EACH]]
    crops = [crops[i] for i in rng.permutation(len(crops))]  # people mixed across photos
    served, second, people = [], [], []
    for start in range(0, len(crops), PER_PHOTO):
        chosen = crops[start : start + PER_PHOTO]
        images = [np.asarray(Image.open(path).convert("RGB")) for _, path in chosen]
        photo = crowd(images, [140] * len(images))
        found = recognizer.recognize_rgb(photo)
        if len(found.faces) == len(chosen):  # faces sorted left to right, as placed
            assert found.features is not None and all(f.label == UNKNOWN for f in found.faces)
            served.append(found.features)
            second.append(companion_rows(companion, photo, found))
            people += [person for person, _ in chosen]
    unknown = recognizer.manifest.unknown.threshold
    grouping = grouping_threshold(recognizer.manifest)
    return Faces(np.vstack(served), np.vstack(second), np.array(people), joint, unknown, grouping)


def test_shared_neighbours_join_far_more_of_each_person_and_no_two_people(faces: Faces) -> None:
    assert len(faces.people) >= 0.9 * 24 * FACES_EACH  # the detector found nearly every photo's four faces
    threshold = GROUPING_RATIO * faces.unknown  # the served embedding alone
    unit = l2_normalise(faces.served.astype(np.float64))
    cosine_alone = drop_small(fcluster(linkage(pdist(unit, "cosine"), "average"), threshold, "distance"))
    before = pairwise(cosine_alone, faces.people)
    after = pairwise(drop_small(group(faces.served, threshold)), faces.people)
    assert after[0] >= 0.98, (before, after)
    assert after[1] >= before[1] + 0.1, (before, after)


def test_the_companion_embedding_joins_more_of_each_person_and_no_two_people(faces: Faces) -> None:
    """The served embedding joined with dlib's, at the model's grouping threshold on that scale."""
    alone = pairwise(drop_small(group(faces.served, GROUPING_RATIO * faces.unknown)), faces.people)
    joined = faces.joint.join(faces.served, faces.companion)
    both = pairwise(drop_small(group(joined, faces.grouping, JOINED_REACH)), faces.people)
    assert both[0] >= max(0.98, alone[0]), (alone, both)
    assert both[1] >= alone[1] + 0.02, (alone, both)
