"""Would mirrored faces make better few-shot references? Measured, not served.

Run by hand (not in CI); about a minute (every photo is decoded and its faces'
mirror images embedded again, which the embedding cache does not hold):

    .venv/bin/python bench/mirror_refs.py

Four ways to embed a face:

- ``plain``: the served embedding of the aligned crop.
- ``refs and their mirrors``: each reference's mirror is a second reference (its nearer view
  counts); queries stay plain. The learning curve's ``--mirror references``, by nearest reference.
- ``refs averaged``: references (training photos) are the unit mean of the crop's
  embedding and its left-right mirror's; queries stay plain. Costs one more FaceNet
  run per training face, nothing per request.
- ``both averaged``: the same for queries too (test-time mirroring): one more FaceNet
  run per face in every request.

For each, on the training split only (each person in turn the stranger, the others
keeping k random training photos as references, 20 draws): the AUC between known faces
and strangers of the distance to the nearest reference, the 99th percentile of the
known distances (what the default threshold for k photos would be), and the share of
strangers above it. Then, for reporting only (nothing is chosen from it), the held-out
40 answered by the nearest reference with that threshold, 10 draws of k photos per
person (the learning curve's draws): end-to-end accuracy.
"""

from __future__ import annotations

import time

import numpy as np
from learning_curve import draw, shared_split
from mirroring import mirrored
from unknown_rules import auc

from app.labelled.folders import Photo
from app.model.unknown import l2_normalise
from training.cache import PhotoFaces

SIZES = (1, 2, 3, 5, 10)


def main() -> int:
    args, stages, _, faces, plan = shared_split(__doc__)
    everyone = [*plan.train, *plan.test]
    start = time.perf_counter()
    mirror = mirrored(stages, everyone, faces)
    print(f"mirrored {len(everyone)} photos in {time.perf_counter() - start:.1f} s")
    avg = {
        p: PhotoFaces(
            faces[p].faces, l2_normalise(l2_normalise(faces[p].features) + l2_normalise(mirror[p].features))
        )
        for p in everyone
    }
    # The face each photo stands for: training's choice for training photos (the face most like
    # the person's single-face photos), the largest face for held-out ones (the face answered).
    index = {}
    for photo, row in zip(plan.train, stages.features_of(plan.train, faces), strict=True):
        index[photo] = int(np.argmin(np.abs(faces[photo].features - row).sum(axis=1)))
    for photo in plan.test:
        index[photo] = int(np.argmax([f.box.area for f in faces[photo].faces]))

    def rows(source: dict[Photo, PhotoFaces], photos: list[Photo]) -> np.ndarray:
        return l2_normalise(np.stack([source[p].features[index[p]] for p in photos]))

    labels = np.array([p.label for p in plan.train])
    truth = np.array([p.label for p in plan.test])
    people = sorted(set(labels))
    ways = {
        "plain": (faces, faces, None),
        "refs and their mirrors": (faces, faces, mirror),
        "refs averaged": (avg, faces, None),
        "both averaged": (avg, avg, None),
    }
    same = 1.0 - np.sum(rows(faces, everyone) * rows(mirror, everyone), axis=1)
    print(
        f"a mirror's distance from its original, median {np.median(same):.3f}, "
        f"p90 {np.percentile(same, 90):.3f}"
    )
    print(
        "| photos per person | embedding | AUC, known vs strangers | p99 known (threshold) "
        "| strangers rejected | held-out end to end, nearest reference | closed set |"
    )
    print("|---|---|---|---|---|---|---|")
    for k in SIZES:
        for name, (ref_source, query_source, also) in ways.items():

            def similarity_to(queries: np.ndarray, photos: list[Photo], source=ref_source, also=also):
                """Cosine similarity of each query to each reference photo: its best view's, when
                the photo's mirror is a reference too."""
                found = queries @ rows(source, photos).T
                return found if also is None else np.maximum(found, queries @ rows(also, photos).T)

            queries_all = rows(query_source, plan.train)
            rng = np.random.default_rng(args.seed)
            known, strangers = [], []
            for _ in range(20):
                for stranger in people:
                    refs = np.concatenate(
                        [
                            rng.choice(np.flatnonzero(labels == p), k, replace=False)
                            for p in people
                            if p != stranger
                        ]
                    )
                    others = np.setdiff1d(np.flatnonzero(labels != stranger), refs)
                    ref_photos = [plan.train[i] for i in refs]
                    known.append(1.0 - similarity_to(queries_all[others], ref_photos).max(axis=1))
                    stranger_rows = queries_all[labels == stranger]
                    strangers.append(1.0 - similarity_to(stranger_rows, ref_photos).max(axis=1))
            kn, st = np.concatenate(known), np.concatenate(strangers)
            cut = float(np.percentile(kn, 99))
            test = rows(query_source, plan.test)
            rng = np.random.default_rng(args.seed)
            right, closed = [], []
            for _ in range(10):
                chosen = draw(plan.train, k, rng)
                names = np.array([p.label for p in chosen])
                similarity = similarity_to(test, chosen)
                hit = names[similarity.argmax(axis=1)] == truth
                right.append(np.mean(hit & (1.0 - similarity.max(axis=1) <= cut)))
                closed.append(np.mean(hit))
            print(
                f"| {k} | {name} | {auc(kn, st):.3f} | {cut:.3f} | {(st > cut).mean():.1%} "
                f"| {np.mean(right):.1%} | {np.mean(closed):.1%} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
