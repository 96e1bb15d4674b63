"""How much faster is the service than the seed's server, measured in the same run?

The seed's server, per request, loaded both Haar cascades from disk, detected on
the full-size image, computed the wavelet features and called the classifier
once per face. This script re-creates that recipe with a classic (Haar +
wavelet + SVM) model trained on the fly, and times it against the service's own
path on the same photos:

    .venv/bin/python bench/seed_recipe.py --repeat 20

With a cnn artifact it also times the seed's CNN call, ``model.predict`` once per
face, against the compiled batched call the service uses.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from latency import DATA, photo_set

from app.artifacts import (
    load_manifest,
    resolve_version_dir,
)
from app.backends.svm import SklearnClassifier
from app.pipeline.decode import decode_image
from app.pipeline.detect.haar import CASCADE_DIR
from app.pipeline.features.wavelet import WaveletFeatures
from app.recognizer import Recognizer
from training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent


def seed_request(data: bytes, estimator, features: WaveletFeatures) -> int:
    """One request the seed's way; returns the number of faces classified."""
    face_cascade = cv2.CascadeClassifier(str(CASCADE_DIR / "haarcascade_frontalface_default.xml"))
    eye_cascade = cv2.CascadeClassifier(str(CASCADE_DIR / "haarcascade_eye.xml"))
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    faces = 0
    for x, y, w, h in face_cascade.detectMultiScale(gray, 1.3, 5):
        if len(eye_cascade.detectMultiScale(gray[y : y + h, x : x + w])) >= 2:
            crop = cv2.cvtColor(bgr[y : y + h, x : x + w], cv2.COLOR_BGR2RGB)
            estimator.predict_proba(features.extract([crop]))
            faces += 1
    return faces


def median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        classic_dir = train(
            TrainConfig(data=args.data, artifacts=Path(tmp), detector="haar", features="wavelet")
        )
        estimator = SklearnClassifier.load(classic_dir, load_manifest(classic_dir)).estimator
    wavelet = WaveletFeatures()
    service = Recognizer.from_artifact(resolve_version_dir(args.artifacts, "svm"))

    print(
        f"| photo | seed recipe, ms | service ({service.manifest.detector.name} + "
        f"{service.manifest.features.name}), ms | speed-up |"
    )
    print("|---|---|---|---|")
    for name, data in photo_set(args.data).items():
        seed = median_ms(lambda d=data: seed_request(d, estimator, wavelet), args.repeat)
        ours = median_ms(lambda d=data: service.recognize(decode_image(d)), args.repeat)
        print(f"| {name} | {seed:.1f} | {ours:.1f} | {seed / ours:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
