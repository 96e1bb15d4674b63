"""How far each network's outputs on this CPU are from its float reference, on real photos.

Run by hand, not in CI (tests/test_numerics.py checks the held-out photos in CI):

    .venv/bin/python bench/numerics.py                          # the shared photos
    .venv/bin/python bench/numerics.py --data ~/photos          # any folder of photos, searched recursively
    .venv/bin/python bench/numerics.py --facenet /tmp/old.onnx  # another FaceNet file, not the committed one

The served session (ONNX Runtime's default optimisations: fused and int8 kernels chosen for this
CPU) is compared with the reference session (every operator on its own, in float; for an int8
network, the numbers its quantization intends). FaceNet: the cosine per face, on the largest
face of each photo as the embedder cuts it. BlazeFace: the largest error of any output, relative
to the largest reference output, on each photo letterboxed as the detector sees it. The CPU is
printed first, since the answer depends on it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from app.pipeline.decode import decode_image
from app.pipeline.detect import create_detector
from app.pipeline.detect.blazeface import MODELS as BLAZEFACE
from app.pipeline.detect.blazeface import _Model
from app.pipeline.features.facenet import MODEL as FACENET
from app.pipeline.features.facenet import FaceNetEmbedder, standardise
from app.pipeline.numerics import agreement, cpu_summary, reference_session
from app.pipeline.onnx_session import session_from_file
from app.pipeline.weights import model_file

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hobbits"
PHOTOS = {".jpg", ".jpeg", ".png", ".webp"}


def photos(data: Path) -> list[np.ndarray]:
    paths = sorted(p for p in data.rglob("*") if p.suffix.lower() in PHOTOS)
    return [decode_image(p.read_bytes()) for p in paths]


def facenet_cosines(network: Path, images: list[np.ndarray]) -> np.ndarray:
    detector, embedder = create_detector("blazeface"), FaceNetEmbedder()
    crops = []
    for rgb in images:
        faces = detector.detect(rgb)
        if faces:
            crops.append(embedder.crop(rgb, max(faces, key=lambda f: f.box.area)))
    feed = {"input:0": standardise(np.stack(crops))}
    served = session_from_file(network, intra_op_threads=2).run(None, feed)[0]
    expected = reference_session(network).run(None, feed)[0]
    return np.array([agreement("cosine", s[None], e[None]) for s, e in zip(served, expected, strict=True)])


def blazeface_errors(name: str, images: list[np.ndarray]) -> np.ndarray:
    model = _Model(BLAZEFACE[name])
    reference = reference_session(model_file(model.spec.file))
    errors = []
    for rgb in images:
        feed = {model.input: model.input_tensor(rgb)[0]}
        served, expected = model.session.run(None, feed), reference.run(None, feed)
        errors.append(max(agreement("max_error", s, e) for s, e in zip(served, expected, strict=True)))
    return np.array(errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA, help="a folder of photos (searched recursively)")
    parser.add_argument("--facenet", type=Path, help="a FaceNet ONNX file (default: the committed one)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data}: no such folder")
    images = photos(args.data)
    if not images:
        parser.error(f"--data {args.data}: no photos")
    print(f"{cpu_summary()}; {len(images)} photos from {args.data}")
    facenet = args.facenet or model_file(FACENET)
    cosines = facenet_cosines(facenet, images)
    print(
        f"{facenet.name}: {len(cosines)} faces, cosine min {cosines.min():.5f}, "
        f"median {np.median(cosines):.5f}, {(cosines < 0.999).sum()} under 0.999"
    )
    for name in sorted(BLAZEFACE):
        errors = blazeface_errors(name, images)
        print(f"blazeface {name}: largest relative error {errors.max():.2e} (median {np.median(errors):.2e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
