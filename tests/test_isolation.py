"""The svm backend starts, loads and classifies without importing TensorFlow."""

from __future__ import annotations

import textwrap

from tests.fresh_python import run_python

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from app.config import Settings
    from app.model_host import ModelHost
    host = ModelHost(Settings(_env_file=None, classifier_backend="svm"))
    model = host.load()
    model.recognize(np.zeros((100, 100, 3), np.uint8))
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras", "torch"})
    print(heavy)
    """
)


def test_svm_never_imports_tensorflow() -> None:
    run = run_python(SCRIPT, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
