"""The names of the files in a model version folder, and of the pointer beside them.

Training writes these files and serving reads them; both take the names from here, so
renaming one is a change to one line. The layout::

    <artifacts_dir>/<backend>/LATEST                one line: the current version
    <artifacts_dir>/<backend>/<version>/MANIFEST    what the version is, with every file's sha256
    <artifacts_dir>/<backend>/<version>/...         the files below
"""

from __future__ import annotations

LATEST = "LATEST"
MANIFEST = "manifest.json"

#: The fitted classifier, one per backend kind.
SKLEARN_MODEL = "model.skops"
#: The scikit-learn model exported to ONNX, when it converts exactly: what the service runs.
SKLEARN_ONNX = "model.onnx"
KERAS_MODEL = "model.keras"
#: The training faces' embeddings, which the "unknown" rule measures distances to.
REFERENCES = "references.npy"
#: One threshold per training face (its person's), when people's thresholds differ.
REFERENCE_THRESHOLDS = "reference_thresholds.npy"
#: The class id of each training face, row for row with the references.
REFERENCE_LABELS = "reference_labels.npy"
#: Faces users corrected ("this is P", "this is not P"), when a version has any (app/model/corrections.py).
CORRECTIONS = "corrections.npz"

#: For people: the training report and its plots.
REPORT = "report.md"
CONFUSION_PNG = "confusion_matrix.png"
OPEN_SET_PNG = "open_set.png"
CURVES_PNG = "training_curves.png"


def class_picture(class_id: str) -> str:
    """The file a class's display picture is copied to."""
    return f"class-{class_id}.jpg"
