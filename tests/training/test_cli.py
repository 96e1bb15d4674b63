"""Options and backends the photos cannot support: one line on stderr, exit status 2; cnn where it can."""

from __future__ import annotations

import gc

import pytest

from app.artifact.manifest import load_manifest
from tests.fresh_python import run_python
from tests.training.conftest import copy_photos, thresholds_table

pytestmark = pytest.mark.slow


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def five_each(tmp_path, shared_photos):
    return copy_photos(tmp_path / "data", {p: paths[:5] for p, paths in shared_photos.items()})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--test-size", "0.7"], "0.7 is outside 0..0.5"),
        (["--test-size", "lots"], "not a number: 'lots'"),
        (["--max-per-class", "0"], "0 is not at least 1"),
    ],
)
def test_usage_errors_print_one_line(five_each, run_cli, capsys, args, message) -> None:
    with pytest.raises(SystemExit) as exc:  # argparse's own checks exit from inside main
        run_cli(five_each, *args)
    assert exc.value.code == 2
    assert message in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--test-size", "0.01"], "raise it, or use 0 to train on everything"),
        (["--version", "../escape"], "invalid model version"),
    ],
)
def test_options_the_photos_cannot_support_are_one_line(five_each, run_cli, args, message) -> None:
    code, err = run_cli(five_each, *args)
    assert code == 2
    assert message in one_line_error(err)


def test_an_existing_version_is_not_overwritten(five_each, run_cli, tmp_path) -> None:
    assert run_cli(five_each)[0] == 0
    code, err = run_cli(five_each)
    assert code == 2
    assert "version v1 already exists" in one_line_error(err)
    assert load_manifest(tmp_path / "artifacts" / "svm" / "v1").version == "v1"


def test_an_artifacts_folder_that_cannot_be_made_is_refused_before_detecting(
    five_each, run_cli, tmp_path
) -> None:
    blocker, cache = tmp_path / "a-file", tmp_path / "empty-cache"
    blocker.write_text("not a folder")
    code, err = run_cli(five_each, "--artifacts", str(blocker / "artifacts"), "--cache-dir", str(cache))
    assert code == 2
    assert one_line_error(err) == f"error: Not a directory: {blocker / 'artifacts' / 'svm'}"
    assert not any(cache.rglob("*.npz"))  # no photo was detected


def test_the_garbage_collector_is_on_again_after_a_run(five_each, run_cli) -> None:
    """The command turns it off while it imports; a caller in the same process gets it back."""
    assert run_cli(five_each)[0] == 0
    assert gc.isenabled()


@pytest.mark.parametrize(
    ("per_person", "people", "extra", "message"),
    [
        (1, 5, ["--test-size", "0"], "the cnn backend needs 2 usable photos of every person"),
        (3, 1, [], "the cnn backend needs at least two people"),
        (3, 5, [], "the cnn backend cannot be scored leave-one-photo-out"),
    ],
)
def test_cnn_refuses_what_it_cannot_learn(
    tmp_path, shared_photos, run_cli, per_person, people, extra, message
):
    """Refused before TensorFlow is even imported: these need no cnn extra."""
    chosen = dict(list(shared_photos.items())[:people])
    data = copy_photos(tmp_path / "data", {p: paths[:per_person] for p, paths in chosen.items()})
    code, err = run_cli(data, *extra, backend="cnn")
    assert code == 2
    assert message in one_line_error(err)


@pytest.mark.cnn
def test_cnn_trains_on_two_photos_each_without_a_score(tmp_path, shared_photos, run_cli) -> None:
    data = copy_photos(tmp_path / "data", {p: paths[:2] for p, paths in list(shared_photos.items())[:3]})
    code, err = run_cli(data, "--test-size", "0", "--max-trials", "1", "--epochs", "2", backend="cnn")
    assert code == 0, err
    manifest = load_manifest(tmp_path / "artifacts" / "cnn" / "v1")
    assert manifest.classifier["validation_faces"] == 3 and manifest.classifier["train_faces"] == 3
    assert manifest.metrics["evaluation"]["method"] == "none"
    # the few-photo default for two photos each
    assert manifest.unknown.threshold == thresholds_table()[2]


def test_a_missing_training_package_is_one_line(tmp_path, shared_photos) -> None:
    """The svm search without skl2onnx (the train extra): the install line, exit 2, no traceback."""
    data = copy_photos(tmp_path / "data", {p: paths[:5] for p, paths in shared_photos.items()})
    script = (
        "import sys; sys.modules['skl2onnx'] = None\n"
        "from training.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    argv = ["train", "--data", str(data), "--artifacts", str(tmp_path / "artifacts"), "--quick", "--no-cache"]
    run = run_python(script, *argv, timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "error: the training backend 'svm' needs skl2onnx: "
        "install the train extra: `pip install -c constraints.txt -e .[train]`"
    )
    assert "Traceback" not in run.stderr


def test_small_faces_chooses_the_search_the_manifest_records(five_each, run_cli, tmp_path) -> None:
    """``--small-faces tiles`` trains with the detector's own tile search (cheaper on large photos),
    the default with CenterFace; each manifest says which, so the service searches the same way."""
    assert run_cli(five_each, "--small-faces", "tiles")[0] == 0
    tiles = load_manifest(tmp_path / "artifacts" / "svm" / "v1").detector.params
    (tmp_path / "artifacts" / "svm" / "v1").rename(tmp_path / "artifacts" / "svm" / "tiles")
    assert run_cli(five_each)[0] == 0
    centerface = load_manifest(tmp_path / "artifacts" / "svm" / "v1").detector.params
    assert (tiles.get("small_faces", "tiles"), tiles["max_side"]) == ("tiles", 1024)
    assert (centerface["small_faces"], centerface["max_side"]) == ("centerface", 1280)
