"""People with different numbers of photos: each gets the unknown threshold for their own photos.

Before, the fewest photos of anyone set one threshold for all: enrolling one person from
four photos loosened the rule for everyone, and strangers passed as the well-photographed
people (docs/benchmarks.md, "Few photos per person").
"""

from __future__ import annotations

import numpy as np
import pytest

from app.artifact.manifest import load_manifest
from app.model.recognizer import UNKNOWN, Recognizer
from app.model.unknown import UnknownRule, l2_normalise
from tests.training.conftest import EMBEDDING, PEOPLE, copy_photos, thresholds_table
from training.unknown_threshold import choose_threshold

pytestmark = pytest.mark.slow

TABLE = thresholds_table()


def mixed(embedded, many: int, few: int) -> tuple[np.ndarray, np.ndarray]:
    """The first four people with ``many`` photos each and the fifth with ``few``."""
    features, labels = embedded
    keep = np.concatenate(
        [np.flatnonzero(labels == p)[:many] for p in PEOPLE[:4]] + [np.flatnonzero(labels == PEOPLE[4])[:few]]
    )
    return features[keep], labels[keep]


def test_each_person_gets_the_default_for_their_own_photos(embedded) -> None:
    choice = choose_threshold(*mixed(embedded, 10, 3), *EMBEDDING)
    assert choice.summary["source"] == "default" and choice.calibration is None
    assert choice.class_thresholds == {**{p: TABLE[10] for p in PEOPLE[:4]}, PEOPLE[4]: TABLE[3]}
    assert choice.threshold == max(TABLE[10], TABLE[3])  # the loosest, for the API and the report
    assert "10+ photos (4 people)" in choice.summary["rule"] and "(1 person)" in choice.summary["rule"]
    # The same number of photos each (or counts under one row of the table): one threshold, as before.
    uniform = choose_threshold(*mixed(embedded, 4, 3), *EMBEDDING)
    assert uniform.class_thresholds is None and uniform.threshold == TABLE[3]


def test_a_reference_threshold_applies_to_that_reference_only(embedded) -> None:
    features, labels = mixed(embedded, 10, 3)
    choice = choose_threshold(features, labels, *EMBEDDING)
    assert choice.class_thresholds is not None
    per_face = np.array([choice.class_thresholds[str(label)] for label in labels])
    rule = UnknownRule(features, choice.threshold, per_face)
    queries = embedded[0]
    distances = 1.0 - l2_normalise(queries) @ l2_normalise(features).T
    expected = ~(distances <= per_face).any(axis=1)
    np.testing.assert_array_equal(rule.is_unknown(queries), expected)
    loose = UnknownRule(features, max(per_face)).is_unknown(queries)
    tight = UnknownRule(features, min(per_face)).is_unknown(queries)
    assert (loose <= expected).all() and (expected <= tight).all()
    with pytest.raises(ValueError, match="thresholds"):
        UnknownRule(features, 0.5, per_face[:-1])


def test_a_newcomer_with_few_photos_does_not_loosen_the_rule_for_everyone(
    tmp_path, shared_photos, data_dir, run_cli
) -> None:
    """Three people with ten photos and one with three; the fifth person is the stranger."""
    enrolled, stranger = PEOPLE[:3], PEOPLE[3]
    photos = {p: shared_photos[p] for p in enrolled} | {PEOPLE[4]: shared_photos[PEOPLE[4]][:3]}
    data = copy_photos(tmp_path / "data", photos)
    code, err = run_cli(data)
    assert code == 0, err
    version_dir = tmp_path / "artifacts" / "svm" / "v1"
    manifest = load_manifest(version_dir)
    # leave-one-photo-out (3 photos are too few to hold one out): each person's own default
    assert manifest.unknown.class_thresholds == {**{p: TABLE[10] for p in enrolled}, PEOPLE[4]: TABLE[3]}
    assert manifest.unknown.threshold == TABLE[3]
    assert "reference_thresholds.npy" in manifest.files
    assert "farther than each person's threshold" in (version_dir / "report.md").read_text()

    def unknowns(recognizer: Recognizer) -> int:
        answers = []
        for path in shared_photos[stranger]:
            faces = recognizer.recognize_bytes(path.read_bytes()).faces
            answers.append(max(faces, key=lambda f: f.box.area).label)
        return answers.count(UNKNOWN)

    per_person = Recognizer.from_artifact(version_dir)
    assert per_person.unknown is not None and per_person.unknown.reference_thresholds is not None
    # UNKNOWN_THRESHOLD set to the loosest threshold: one for all, as every person had before.
    one_for_all = Recognizer.from_artifact(version_dir, unknown_threshold=TABLE[3])
    assert one_for_all.unknown is not None and one_for_all.unknown.reference_thresholds is None
    assert unknowns(per_person) >= unknowns(one_for_all)
    assert unknowns(per_person) >= 6
    # photos of the enrolled people that training never saw are still theirs
    for person in enrolled:
        labels = []
        for path in sorted((data_dir / person).glob("*.jpg"))[10:13]:
            faces = per_person.recognize_bytes(path.read_bytes()).faces
            labels.append(max(faces, key=lambda f: f.box.area).label)
        assert labels.count(person) >= 2, labels
