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

from app.artifact.manifest import (
    load_manifest,
    resolve_version_dir,
)
from app.backends.sklearn_model import load_estimator
from app.model.recognizer import Recognizer
from app.pipeline.detect.haar import CASCADE_DIR
from app.pipeline.features.wavelet import WaveletFeatures
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
        estimator = load_estimator(classic_dir, load_manifest(classic_dir))
        classic = Recognizer.from_artifact(classic_dir)
    wavelet = WaveletFeatures()
    default_dir = resolve_version_dir(args.artifacts, "svm")
    service = Recognizer.from_artifact(default_dir)

    # Typical photos: the default model's held-out test photos, each timed end to end.
    held_out = [args.data / name for name in load_manifest(default_dir).dataset["test_files"]]
    timed = {"seed recipe": [], "classic pipeline (Haar + wavelet + SVM)": [], "default pipeline": []}
    for path in held_out:
        data = path.read_bytes()
        for name, run in zip(
            timed,
            (
                lambda d=data: seed_request(d, estimator, wavelet),
                lambda d=data: classic.recognize_bytes(d),
                lambda d=data: service.recognize_bytes(d),
            ),
            strict=True,
        ):
            timed[name].append(median_ms(run, 3))
    print(f"Per-photo p50 over the {len(held_out)} held-out photos, decode included, ms:")
    print("| " + " | ".join(timed) + " |")
    print("|---|---|---|")
    print("| " + " | ".join(f"{statistics.median(v):.1f}" for v in timed.values()) + " |")
    print()

    print(
        f"| photo | seed recipe, ms | service ({service.manifest.detector.name} + "
        f"{service.manifest.features.name}), ms | speed-up |"
    )
    print("|---|---|---|---|")
    for name, data in photo_set(args.data).items():
        seed = median_ms(lambda d=data: seed_request(d, estimator, wavelet), args.repeat)
        ours = median_ms(lambda d=data: service.recognize_bytes(d), args.repeat)
        print(f"| {name} | {seed:.1f} | {ours:.1f} | {seed / ours:.1f}x |")

    cnn_root = args.artifacts / "cnn"
    if (cnn_root / "LATEST").is_file():
        cnn = Recognizer.from_artifact(resolve_version_dir(args.artifacts, "cnn"))
        photo = cnn.decode(photo_set(args.data)["four faces"])
        faces = cnn.detector.detect(photo.rgb)
        features = cnn.extractor.extract([cnn.extractor.crop(photo.rgb, f) for f in faces])
        keras_model = cnn.classifier.model
        per_face = median_ms(
            lambda: [keras_model.predict(row[None], verbose=0) for row in features], args.repeat
        )
        batched = median_ms(lambda: cnn.classifier.predict_proba(features), args.repeat)
        print()
        print(
            f"cnn classify step, {len(features)} faces: model.predict per face {per_face:.1f} ms; "
            f"one compiled batched call {batched:.2f} ms ({per_face / batched:.0f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
