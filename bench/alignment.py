"""Landmark alignment: how well each detector's points fit a template, and what the crop does to an embedding.

Run by hand (not in CI); the embedding cache makes a second run take seconds:

    .venv/bin/python bench/alignment.py                                   # BlazeFace, FaceNet box vs ArcFace
    .venv/bin/python bench/alignment.py --detector centerface             # another detector's points
    .venv/bin/python bench/alignment.py --features dlib --crops '{}'      # another embedding, its own crop
    .venv/bin/python bench/alignment.py --time                            # the crop's cost per face

One set of faces for every row: the largest face of every shared photo (199), as the
issue measured. Per detector and crop:

- **fit**: the root mean square distance, in crop pixels, from the detector's landmarks
  (mapped through the least-squares similarity) to the template's points, as a share of
  the template's eye distance; median and 90th percentile over faces. It is what the
  detector's points disagree with a rigid face: the lower, the steadier the crop.
- **box crop**: faces the alignment could not fix a transform for (they got the box crop).
- **AUC** of cosine similarity, same person vs different person, over every pair of faces;
  **TAR at 1% FAR**: same-person pairs accepted at the similarity that lets 1% of
  different-person pairs through.
- **nearest centroid at k**: k random photos per person are references (20 draws), every
  other photo goes to the person with the nearest mean embedding: closed-set accuracy.

Nothing here chooses a threshold or a setting: it compares crops. ``--time`` times the crop
alone on the latency benchmark's one-face photo: the box crop, the template warp, and the
least-squares fit inside the warp (200 calls, best of 5, median of 3 such).
"""

from __future__ import annotations

import argparse
import json
import timeit
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from app.labelled.folders import scan
from app.model.unknown import l2_normalise
from app.pipeline.align import arcface_template, estimate_similarity, warp_to_template
from app.pipeline.crop import align_face
from app.pipeline.decode import decode_image
from app.pipeline.detect import Detection, create_detector
from app.pipeline.features import FeatureExtractor, create_extractor
from app.pipeline.numerics import cpu_summary
from training.cache import EmbeddingCache, default_cache_dir
from training.run_config import DEFAULT_DETECTOR, DEFAULT_FEATURES
from training.train import Stages, usable_photos

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hobbits"
KS = (1, 3, 5)
DRAWS = 20


def fit_error(face: Detection, extractor: FeatureExtractor) -> float | None:
    """RMS distance of the mapped landmarks from the template's points over its eye distance; None: no fit."""
    template = extractor.template
    if template is None:
        return None
    matrix = estimate_similarity(face, template)
    if matrix is None:
        return None
    names = [n for n in template.points if n in face.landmarks]
    source = np.array([face.landmarks[n] for n in names])
    target = np.array([template.points[n] for n in names])
    mapped = source @ matrix[:, :2].T + matrix[:, 2]
    eyes = np.subtract(template.points["right_eye"], template.points["left_eye"])
    return float(np.sqrt(((mapped - target) ** 2).sum(axis=1).mean()) / np.hypot(*eyes))


def verification(features: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """AUC of same vs different person over every pair, and the true accept rate at 1% false accepts."""
    unit = l2_normalise(features)
    upper = np.triu_indices(len(labels), 1)
    similarity = (unit @ unit.T)[upper]
    same = (labels[:, None] == labels[None, :])[upper]
    fpr, tpr, _ = roc_curve(same, similarity)
    return float(roc_auc_score(same, similarity)), float(np.interp(0.01, fpr, tpr))


def nearest_centroid(features: np.ndarray, labels: np.ndarray, k: int, seed: int) -> float:
    """Closed-set accuracy with k random references per person (mean of ``DRAWS`` draws)."""
    unit = l2_normalise(features)
    people = np.unique(labels)
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(DRAWS):
        refs = {p: rng.choice(np.flatnonzero(labels == p), k, replace=False) for p in people}
        centroids = l2_normalise(np.stack([unit[refs[p]].mean(axis=0) for p in people]))
        rest = np.setdiff1d(np.arange(len(labels)), np.concatenate(list(refs.values())))
        predicted = people[(unit[rest] @ centroids.T).argmax(axis=1)]
        scores.append(float((predicted == labels[rest]).mean()))
    return float(np.mean(scores))


def measure(
    detector_name: str, features_name: str, params: dict, data: Path, cache_dir: Path, seed: int
) -> dict:
    detector, extractor = create_detector(detector_name), create_extractor(features_name, params)
    stages = Stages(detector, extractor, EmbeddingCache.for_stages(cache_dir, detector, extractor))
    dataset, faces = usable_photos(scan(data), stages)
    largest = [faces[p].faces[int(np.argmax([f.box.area for f in faces[p].faces]))] for p in dataset.photos]
    rows = np.stack(
        [faces[p].features[int(np.argmax([f.box.area for f in faces[p].faces]))] for p in dataset.photos]
    )
    labels = np.array([p.label for p in dataset.photos])
    errors = [fit_error(face, extractor) for face in largest]
    fitted = np.array([e for e in errors if e is not None])
    auc, tar = verification(rows, labels)
    return {
        "detector": detector_name,
        "features": f"{features_name} {extractor.params}",
        "faces": len(largest),
        "landmarks": sorted({n for f in largest for n in f.landmarks}),
        "fit_median": float(np.median(fitted)) if len(fitted) else None,
        "fit_p90": float(np.percentile(fitted, 90)) if len(fitted) else None,
        "box_crop": len(largest) - len(fitted) if extractor.template is not None else len(largest),
        "auc": auc,
        "tar_at_1pct_far": tar,
        **{f"centroid_k{k}": nearest_centroid(rows, labels, k, seed) for k in KS},
    }


def crop_times(data: Path) -> None:
    """Microseconds per call of each crop on the one-face photo of bench/latency.py."""
    from latency import ONE_FACE  # bench/ is the script's folder

    rgb = decode_image((data / ONE_FACE[0]).read_bytes())
    (face,) = create_detector(DEFAULT_DETECTOR).detect(rgb)
    template = arcface_template(160)
    print(f"{cpu_summary()}; {ONE_FACE[0]}, microseconds per call")
    for name, call in (
        ("box crop (crop.align_face)", lambda: align_face(rgb, face, template.size)),
        ("template warp (align.warp_to_template)", lambda: warp_to_template(rgb, face, template)),
        ("its least-squares fit (align.estimate_similarity)", lambda: estimate_similarity(face, template)),
    ):
        best = [min(timeit.repeat(call, number=200, repeat=5)) / 200 * 1e6 for _ in range(3)]
        print(f"{name}: {np.median(best):.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--detector", default=DEFAULT_DETECTOR)
    parser.add_argument("--features", default=DEFAULT_FEATURES)
    parser.add_argument(
        "--crops",
        nargs="+",
        type=json.loads,
        default=[{"crop": "box"}, {"crop": "arcface"}],
        help="the embedding's parameters to compare, one JSON object each (default: FaceNet's two crops)",
    )
    parser.add_argument("--time", action="store_true", help="time the crops instead")
    args = parser.parse_args()
    if args.time:
        crop_times(args.data)
        return 0
    print(
        "| detector | embedding, crop | faces | landmark fit, median / p90 | box crop | AUC | TAR at 1% FAR "
        f"| nearest centroid at {' / '.join(map(str, KS))} |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for params in args.crops:
        r = measure(args.detector, args.features, params, args.data, args.cache_dir, args.seed)
        fit = "–" if r["fit_median"] is None else f"{r['fit_median']:.3f} / {r['fit_p90']:.3f}"
        centroid = " / ".join(f"{r[f'centroid_k{k}']:.3f}" for k in KS)
        print(
            f"| {r['detector']} ({', '.join(r['landmarks'])}) | {r['features']} | {r['faces']} | {fit} "
            f"| {r['box_crop']} | {r['auc']:.3f} | {r['tar_at_1pct_far']:.3f} | {centroid} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
