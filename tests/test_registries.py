"""One registry per stage; settings, the training CLI and the docs agree with them."""

from __future__ import annotations

from typing import get_args

import pytest

from app.backends import BACKENDS
from app.config import PROJECT_ROOT, BackendName, DetectorName
from app.pipeline.detect import DETECTORS, create_detector
from app.pipeline.detect.blazeface import SMALL_FACE_SEARCHES
from app.pipeline.features import FEATURES
from app.registry import Registry
from training.cli import build_parser
from training.fitting import TRAINERS


def test_settings_accept_exactly_the_registered_names() -> None:
    assert set(get_args(BackendName)) == set(BACKENDS.names)
    assert set(get_args(DetectorName)) == set(DETECTORS.names)


def test_every_serving_backend_has_a_trainer() -> None:
    assert TRAINERS.names == BACKENDS.names


def test_training_cli_offers_the_registered_names() -> None:
    choices = {
        action.dest: tuple(action.choices)
        for action in build_parser()._subparsers._group_actions[0].choices["train"]._actions  # type: ignore[union-attr]
        if action.choices
    }
    assert choices == {
        "backend": TRAINERS.names,
        "detector": DETECTORS.names,
        "features": FEATURES.names,
        "small_faces": SMALL_FACE_SEARCHES,
    }


@pytest.mark.parametrize("registry", [BACKENDS, DETECTORS, FEATURES, TRAINERS], ids=lambda r: r.stage)
def test_docs_describe_every_registered_name(registry: Registry) -> None:
    architecture = (PROJECT_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name in registry.names:
        assert f"`{name}`" in architecture, f"docs/architecture.md does not mention {registry.stage} {name}"


def test_an_unknown_name_is_refused_with_the_choices() -> None:
    choices = "choose one of blazeface, centerface, haar"
    with pytest.raises(ValueError, match=f"unknown face detector 'dlib'; {choices}"):
        create_detector("dlib")


def test_every_entry_imports_and_is_what_it_says() -> None:
    for name in DETECTORS.names:
        assert DETECTORS.load(name).name == name
    for name in FEATURES.names:
        assert FEATURES.load(name).name == name
    assert callable(TRAINERS.load("svm"))
    assert hasattr(BACKENDS.load("svm"), "load")
