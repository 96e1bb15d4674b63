"""Model search for the cnn backend: KerasTuner over small Keras models, scored on a validation split.

The model takes the same flat feature rows every backend gets. When the extractor's
rows are images (``feature_shape`` (h, w, c)), it reshapes them, augments them while
training (flips, small rotations and shifts, brightness, contrast) and searches two
convolutional architectures, one of them exactly the seed's (3 x Conv2D+MaxPool,
Dense, softmax) so the report compares against it. When rows are vectors (face
embeddings), it searches a dense head. The validation split comes from the
training photos only; the test split is never seen here.
"""

from __future__ import annotations

import os

# Before TensorFlow loads (keras and keras_tuner import it): no INFO/WARNING banners from its runtime.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt
import numpy as np
from keras import layers
from sklearn.model_selection import train_test_split

from app.artifact.file_names import CURVES_PNG, KERAS_MODEL
from app.backends.keras_model import configure_tensorflow
from training.fitting import FitOptions

VALIDATION_FRACTION = 0.2
BATCH_SIZE = 32
PATIENCE = 5
WARM_UP_EPOCHS = 10
#: Search budgets: trials and the most epochs one trial may run (EarlyStopping usually ends it sooner).
FULL_BUDGET = (20, 100)
QUICK_BUDGET = (2, 3)
#: The candidates' ``architecture`` hyperparameter, in words (the backend is called ``cnn`` whatever wins).
ARCHITECTURES = {
    "dense": "dense head (one hidden layer)",
    "seed": "3×Conv2D+MaxPool and a dense layer (the seed's network)",
    "batchnorm_gap": "3×Conv2D with batch norm and global average pooling",
}


def build_model(
    hp: keras_tuner.HyperParameters, feature_shape: tuple[int, ...], n_classes: int, seed: int
) -> keras.Model:
    """One candidate: flat rows in, class probabilities out."""
    dim = math.prod(feature_shape)
    inputs = keras.Input((dim,), name="features")
    if len(feature_shape) == 3:
        outputs = _image_head(hp, layers.Reshape(feature_shape)(inputs), n_classes, seed)
    else:
        outputs = _dense_head(hp, inputs, n_classes)
    model = keras.Model(inputs, outputs)
    learning_rate = hp.Choice("learning_rate", [3e-3, 1e-3, 3e-4])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _image_head(hp: keras_tuner.HyperParameters, x: Any, n_classes: int, seed: int) -> Any:
    # Random layers are the identity when called with training=False, i.e. when serving.
    x = layers.RandomFlip("horizontal", seed=seed)(x)
    x = layers.RandomRotation(0.03, fill_mode="nearest", seed=seed)(x)  # about ±11 degrees
    x = layers.RandomTranslation(0.08, 0.08, fill_mode="nearest", seed=seed)(x)
    x = layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed)(x)
    x = layers.RandomContrast(0.2, seed=seed)(x)
    x = layers.Rescaling(1 / 255)(x)
    architecture = hp.Choice("architecture", ["seed", "batchnorm_gap"])
    filters = hp.Choice("filters", [16, 32])
    units = hp.Choice("units", [64, 128])
    if architecture == "seed":
        for block in range(3):
            x = layers.Conv2D(filters * 2**block, 3, activation="relu")(x)
            x = layers.MaxPooling2D()(x)
        x = layers.Flatten()(x)
        x = layers.Dense(units, activation="relu")(x)
    else:
        # Batch norm and global average pooling: far fewer weights than the seed's Flatten+Dense.
        with hp.conditional_scope("architecture", ["batchnorm_gap"]):
            dropout = hp.Choice("dropout", [0.25, 0.5])
        for block in range(3):
            x = layers.Conv2D(filters * 2**block, 3, padding="same", use_bias=False)(x)
            # momentum 0.9, not 0.99: a few batches per epoch would leave the serving statistics unsettled.
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.ReLU()(x)
            x = layers.MaxPooling2D()(x)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dropout(dropout)(x)
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    return layers.Dense(n_classes, activation="softmax")(x)


def _dense_head(hp: keras_tuner.HyperParameters, x: Any, n_classes: int) -> Any:
    hp.Fixed("architecture", "dense")
    x = layers.Dense(hp.Choice("units", [64, 128, 256]), activation="relu")(x)
    x = layers.Dropout(hp.Choice("dropout", [0.0, 0.25, 0.5]))(x)
    return layers.Dense(n_classes, activation="softmax")(x)


class _Search(keras_tuner.HyperModel):
    """Builds the candidates, and keeps what KerasTuner does not: every epoch's metrics and the winner.

    EarlyStopping restores each trial's lowest-validation-loss weights, so the model
    left after ``fit`` is the trial's best; keeping it avoids reloading a checkpoint.
    """

    def __init__(self, feature_shape: tuple[int, ...], n_classes: int, seed: int) -> None:
        super().__init__()
        self.feature_shape, self.n_classes, self.seed = feature_shape, n_classes, seed
        self.histories: list[tuple[dict[str, Any], dict[str, list[float]]]] = []
        self.best: tuple[float, keras.Model] | None = None

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        return build_model(hp, self.feature_shape, self.n_classes, self.seed)

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
        history = model.fit(*args, **kwargs)
        self.histories.append((dict(hp.values), history.history))
        val_loss = min(history.history["val_loss"])
        if self.best is None or val_loss < self.best[0]:
            self.best = (val_loss, model)
        return history


@dataclass
class CnnModel:
    model: keras.Model
    summary: dict[str, Any]
    #: Per trial: its name and its per-epoch metric history, for the training-curves plot.
    curves: list[tuple[str, dict[str, list[float]]]]

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.model(features.astype(np.float32), training=False).numpy()

    def save(self, version_dir: Path) -> None:
        # The same layers in an uncompiled model: serving needs no optimizer state, which triples the file.
        keras.Model(self.model.inputs, self.model.outputs).save(version_dir / KERAS_MODEL)
        plot_curves(self.curves, version_dir / CURVES_PNG)


def fit(
    features: np.ndarray, labels: np.ndarray, feature_shape: tuple[int, ...], options: FitOptions
) -> CnnModel:
    """Search architectures and hyperparameters; return the trial with the lowest validation loss."""
    configure_tensorflow()
    seed = options.seed
    keras.utils.set_random_seed(seed)
    default_trials, default_epochs = QUICK_BUDGET if options.quick else FULL_BUDGET
    max_trials, epochs = options.max_trials or default_trials, options.epochs or default_epochs
    classes = sorted({str(label) for label in labels})
    y = np.array([classes.index(str(label)) for label in labels])
    n_val = max(len(classes), round(VALIDATION_FRACTION * len(y)))
    x_train, x_val, y_train, y_val = train_test_split(
        features.astype(np.float32), y, test_size=n_val, stratify=y, random_state=seed
    )
    search = _Search(feature_shape, len(classes), seed)
    with tempfile.TemporaryDirectory(prefix="keras-tuner-") as workdir:
        tuner = keras_tuner.RandomSearch(
            search,
            # Loss rather than accuracy: on a few dozen validation faces accuracy moves in big steps.
            objective="val_loss",
            max_trials=max_trials,
            seed=seed,
            directory=workdir,
            project_name="cnn",
            overwrite=True,
        )
        tuner.search(
            x_train,
            y_train,
            validation_data=(x_val, y_val),
            epochs=epochs,
            batch_size=BATCH_SIZE,
            callbacks=[
                # Candidates sit at chance (loss ≈ ln 5) for their first epochs; patience counts after.
                keras.callbacks.EarlyStopping(
                    patience=PATIENCE, restore_best_weights=True, start_from_epoch=WARM_UP_EPOCHS
                )
            ],
            verbose=0,
        )
    candidates: dict[str, dict[str, Any]] = {}
    curves = []
    for params, history in sorted(search.histories, key=lambda h: min(h[1]["val_loss"])):
        best_epoch = int(np.argmin(history["val_loss"]))
        name = f"{len(candidates) + 1}. {params['architecture']}"
        candidates[name] = {
            "validation_accuracy": float(history["val_accuracy"][best_epoch]),
            "best_params": params,
            "val_loss": float(history["val_loss"][best_epoch]),
            "best_epoch": best_epoch + 1,
            "epochs_run": len(history["val_loss"]),
        }
        curves.append((name, history))
    winner = next(iter(candidates))
    summary = {
        "winner": winner,
        "architecture": ARCHITECTURES[str(candidates[winner]["best_params"]["architecture"])],
        "params": candidates[winner]["best_params"],
        "classes": classes,
        "choice": "lowest validation loss among the KerasTuner trials",
        "search": (
            f"KerasTuner random search, {len(candidates)} trials, on a {len(y_val)}-face validation split "
            "of the training photos, ranked by validation loss; accuracy is on that split."
        ),
        "candidates": candidates,
        "train_faces": len(y_train),
        "validation_faces": len(y_val),
    }
    if search.best is None:
        raise RuntimeError("KerasTuner ran no trial")  # max_trials >= 1, so not reachable
    return CnnModel(search.best[1], summary, curves)


def plot_curves(curves: list[tuple[str, dict[str, list[float]]]], path: Path) -> None:
    """The winner's loss and accuracy per epoch, with every other trial's validation curves faint."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for _, history in curves[1:]:
            ax.plot(history[f"val_{metric}"], color="grey", alpha=0.3, linewidth=1)
        name, history = curves[0]
        ax.plot(history[metric], label=f"train ({name})")
        ax.plot(history[f"val_{metric}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    axes[0].set_title("Winner; other trials' validation in grey")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
