"""A retrain pays for what it uses: no plotting library for a plot it does not draw, no second model load.

Speed itself is measured in bench/retrain.py (docs/benchmarks.md); these tests hold the
causes in place: what a warm svm run imports, the confusion matrix drawn without matplotlib,
and scikit-learn imported in the command's own thread while the main thread reads photos.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from PIL import Image

from tests.fresh_python import run_python
from tests.training.conftest import copy_photos
from training.cli import import_model_search
from training.report import DARK, LIGHT, plot_confusion

pytestmark = pytest.mark.slow

#: A command run, reporting its exit code, the heavy libraries it imported, and how many
#: scikit-learn, SciPy and skops modules it imported, with those the main thread imported
#: first while the loading thread was still importing (after it, the main thread may: an
#: ONNX export imports skl2onnx, which looks for more of scikit-learn).
SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    first = {}
    class Spy:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("sklearn", "scipy", "skops"):
                first.setdefault(name, (threading.current_thread().name, time.monotonic()))
    sys.meta_path.insert(0, Spy())
    import training.cli as cli
    loaded = []
    import_model_search = cli.import_model_search
    def timed(backend):
        import_model_search(backend)
        loaded.append(time.monotonic())
    cli.import_model_search = timed
    code = cli.main(sys.argv[1:])
    heavy = {"matplotlib", "tensorflow", "keras", "keras_tuner"}
    print(code, sorted(m for m in sys.modules if m.split(".")[0] in heavy))
    early = sorted(n for n, (t, at) in first.items() if t == "MainThread" and at < loaded[0])
    print(len(first), early)
    """
)


def test_an_svm_retrain_without_a_calibration_plot_never_imports_matplotlib(
    tmp_path, shared_photos, cache_dir
) -> None:
    """Six photos each: a held-out split, the few-photo default threshold, so nothing needs matplotlib.

    And the main thread imports no scikit-learn module while the command's loading thread
    imports them: two threads never import one module at once (training.cli).
    """
    data = copy_photos(tmp_path / "data", {p: paths[:6] for p, paths in shared_photos.items()})
    argv = ["train", "--data", str(data), "--artifacts", str(tmp_path / "artifacts"), "--quick"]
    run = run_python(SCRIPT, *argv, "--cache-dir", str(cache_dir), "--version", "v1", timeout=300)
    assert run.returncode == 0, run.stderr
    heavy, threads = run.stdout.strip().splitlines()[-2:]
    assert heavy == "0 []", run.stdout
    imported, by_main = threads.split(" ", 1)
    assert by_main == "[]", run.stdout
    assert int(imported) > 100  # the spy saw the imports
    version_dir = tmp_path / "artifacts" / "svm" / "v1"
    assert (version_dir / "confusion_matrix.png").is_file()
    assert not (version_dir / "open_set.png").exists()


def test_importing_the_training_run_does_not_import_scikit_learn() -> None:
    """The command imports ``training.train`` first, scikit-learn in a thread: the first stays light."""
    script = "import sys, training.train; print(sorted({'sklearn', 'scipy', 'skops'} & set(sys.modules)))"
    run = run_python(script, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_the_import_thread_leaves_a_failure_to_the_main_thread() -> None:
    """An unknown or uninstalled backend is reported where it always was, not raised from the thread."""
    import_model_search("no-such-backend")


@pytest.mark.parametrize("method", ["held_out", "leave_one_photo_out"])
def test_the_confusion_matrix_is_drawn_with_pillow(tmp_path, method) -> None:
    rows = ["billy_boyd", "dominic_monaghan", "elijah_wood"]
    metrics = {
        "accuracy": 0.875,
        "confusion_matrix": {
            "rows": rows,
            "columns": [*rows, "unknown", "(no face)"],
            "matrix": [[8, 0, 0, 0, 0], [1, 6, 0, 1, 0], [0, 0, 8, 0, 0]],
        },
    }
    path = tmp_path / "confusion_matrix.png"
    plot_confusion(metrics, method, path)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        width, height = image.size
        assert 5 * 64 < width < 1200 and 3 * 64 < height < 800
        pixels = np.asarray(image)
    # The fullest cell is the darkest blue, an empty one the lightest; both appear.
    colours = {tuple(c) for c in pixels.reshape(-1, 3)}
    assert tuple(DARK) in colours and tuple(LIGHT) in colours
