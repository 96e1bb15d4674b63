"""The TensorFlow/Keras backend: a ``.keras`` model answered through one compiled call.

This module and ``training/keras_search.py`` are the only places TensorFlow is imported, so
the svm service never loads it. ``model.predict`` builds a data pipeline on every call;
a ``tf.function`` with a fixed input signature is traced once, at warm-up, and then
answers all faces of a photo in one call (docs/benchmarks.md, "Against the seed's
server": one compiled call against a predict per face).
"""

from __future__ import annotations

import os

# Before TensorFlow loads: no INFO/WARNING banners from its C++ runtime, and Keras on TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from app.artifact.file_names import KERAS_MODEL
from app.artifact.manifest import ArtifactError, Manifest
from app.backends import Classifier


def configure_tensorflow() -> None:
    """Size TensorFlow's thread pools to the CPUs this process may use, not the host's.

    Only possible before TensorFlow runs its first op; later calls keep what is set.
    """
    cores = len(os.sched_getaffinity(0))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cores)
        tf.config.threading.set_inter_op_parallelism_threads(cores)
    except RuntimeError:
        pass  # the runtime is already up (e.g. training loaded first); its pools stay as they are


class KerasClassifier(Classifier):
    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.n_classes = int(model.output_shape[-1])
        spec = tf.TensorSpec((None, int(model.input_shape[-1])), tf.float32)
        #: The compiled forward pass. training=False: augmentation and dropout off. The fixed
        #: signature means it is traced once (at warm-up) and never again, whatever the batch size.
        self.compiled = tf.function(
            lambda x: model(x, training=False), input_signature=[spec], autograph=False
        )

    @classmethod
    def load(cls, version_dir: Path, manifest: Manifest) -> KerasClassifier:
        """Load a model whose sha256 ``load_manifest`` has verified; safe_mode refuses embedded code."""
        configure_tensorflow()
        path = version_dir / KERAS_MODEL
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load {path}: {exc}") from exc
        if len(model.input_shape) != 2:
            raise ArtifactError(f"{path} takes input {model.input_shape}; expected flat feature rows")
        if model.output_shape[-1] != len(manifest.classes):
            raise ArtifactError(
                f"{path} has {model.output_shape[-1]} outputs for {len(manifest.classes)} classes"
            )
        trained_on = manifest.classifier.get("classes")
        if trained_on is not None and trained_on != manifest.class_ids:
            raise ArtifactError(f"{path} was trained on classes {trained_on}, not the manifest's")
        return cls(model)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.empty((0, self.n_classes), np.float32)
        return self.compiled(tf.convert_to_tensor(features, tf.float32)).numpy()
