"""The svm backend starts, loads and classifies without importing TensorFlow, or scikit-learn.

The default model has an ONNX export (training/onnx_export.py), so the service runs it
with ONNX Runtime and leaves scikit-learn, skops and SciPy out: less memory, a quicker start.
"""

from __future__ import annotations

import textwrap

from tests.fresh_python import run_python

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from app.config import Settings
    from app.model.host import ModelHost
    host = ModelHost(Settings(_env_file=None, classifier_backend="svm"))
    model = host.load()
    model.recognize_rgb(np.zeros((100, 100, 3), np.uint8))
    print(type(model.classifier).__name__)
    heavy = {"tensorflow", "keras", "torch", "sklearn", "skops", "scipy"}
    print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
    """
)


def test_svm_serves_without_tensorflow_or_scikit_learn() -> None:
    run = run_python(SCRIPT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["OnnxClassifier", "[]"]
