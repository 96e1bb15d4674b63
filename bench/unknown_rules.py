"""Why the unknown rule costs accuracy with few photos, and which rules could do better.

Run by hand (not in CI); seconds with a warm embedding cache:

    .venv/bin/python bench/unknown_rules.py

Three tables (docs/benchmarks.md, "Few photos per person"):

1. **Rules, on the training split only.** For k photos per person, 20 draws: each
   person in turn is the stranger, the other four keep k random training photos as
   references, their other training photos are the known faces. For each rule's score
   (higher = more likely unknown): the AUC between known faces and strangers, and the
   share of strangers rejected at the score that keeps 99% of known faces (the way the
   few-photo defaults are set). Rules: distance to the nearest training photo (the
   rule served), to the nearest class centroid, the margin and the ratio between the
   nearest and the second-nearest person, and the nearest-photo distance scaled by the
   spread of that person's references.
2. **Held-out distances against the defaults**, for the explanation only (nothing is
   chosen from it): how far the 40 held-out photos' largest faces lie from the nearest
   of k training photos of their own person, next to the same on the training split.
3. **The trade-off** of loosening the thresholds: strangers rejected on the training
   split against held-out end to end with the nearest training photo deciding.
4. **Does a 99th percentile measured on some photos hold on others?** On the training
   split only: each person's training photos cut in two halves at random (40 cuts); the
   threshold is the percentile of the nearest-of-k distances within one half (20 draws
   of k references there), and the other half's photos are checked against the same
   references. The share above the threshold is what the default would cost on photos
   it was not measured on (1% if the percentile held).
"""

from __future__ import annotations

import numpy as np
from learning_curve import draw, largest_face, shared_split

from app.model.same_person import default_thresholds
from app.model.unknown import l2_normalise

SIZES = (1, 2, 3, 5, 10)


def scores(queries: np.ndarray, refs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Each rule's score per query (unit rows): higher means more likely a stranger."""
    distance = 1.0 - queries @ refs.T
    nearest = distance.argmin(axis=1)
    first = distance.min(axis=1)
    other = np.where(labels[None, :] != labels[nearest][:, None], distance, np.inf).min(axis=1)
    people = sorted(set(labels))
    centroids = l2_normalise(np.stack([refs[labels == p].mean(axis=0) for p in people]))
    spread = {}
    for p in people:
        theirs = refs[labels == p]
        pairs = 1.0 - theirs @ theirs.T
        spread[p] = pairs[np.triu_indices(len(theirs), 1)].mean() if len(theirs) > 1 else np.nan
    typical = np.nanmedian(list(spread.values())) if len(refs) > len(people) else np.nan
    scale = np.array([spread[p] / typical for p in labels[nearest]])
    return {
        "nearest photo (served)": first,
        "nearest centroid": (1.0 - queries @ centroids.T).min(axis=1),
        "margin to 2nd person": first - other,
        "ratio to 2nd person": first / other,
        "nearest photo / spread": first / scale if np.isfinite(typical) else first,
        "nearest photo + 0.25 margin": first + 0.25 * (first - other),
    }


def auc(known: np.ndarray, strangers: np.ndarray) -> float:
    """P(a stranger scores above a known face), ties counted half."""
    ranks = np.concatenate([known, strangers]).argsort().argsort() + 1.0
    return float(
        (ranks[len(known) :].sum() - len(strangers) * (len(strangers) + 1) / 2)
        / (len(known) * len(strangers))
    )


def leave_one_person_out(features, labels, k, rng, draws=20):
    """Known and stranger scores per rule, and the nearest-photo distances, over ``draws`` draws."""
    people = sorted(set(labels))
    known: dict[str, list] = {}
    strangers: dict[str, list] = {}
    for _ in range(draws):
        for stranger in people:
            refs = np.concatenate(
                [rng.choice(np.flatnonzero(labels == p), k, replace=False) for p in people if p != stranger]
            )
            others = np.setdiff1d(np.flatnonzero(labels != stranger), refs)
            for store, rows in ((known, others), (strangers, np.flatnonzero(labels == stranger))):
                for name, score in scores(features[rows], features[refs], labels[refs]).items():
                    store.setdefault(name, []).append(score)
    return {n: np.concatenate(v) for n, v in known.items()}, {
        n: np.concatenate(v) for n, v in strangers.items()
    }


def main() -> int:
    args, stages, _, faces, plan = shared_split(__doc__)
    features = l2_normalise(stages.features_of(plan.train, faces))
    labels = np.array([p.label for p in plan.train])
    test = l2_normalise(np.stack([largest_face(faces[p]) for p in plan.test]))
    truth = np.array([p.label for p in plan.test])
    table = default_thresholds(stages.extractor.name, stages.extractor.params)["by_photos_per_person"]

    print("| photos per person | rule | AUC, known vs strangers | strangers rejected at 99% known accepted |")
    print("|---|---|---|---|")
    for k in SIZES:
        known, strangers = leave_one_person_out(features, labels, k, np.random.default_rng(args.seed))
        for name in known:
            cut = np.percentile(known[name], 99)
            print(
                f"| {k} | {name} | {auc(known[name], strangers[name]):.3f} "
                f"| {(strangers[name] > cut).mean():.0%} |"
            )

    print()
    print(
        "| photos per person | default threshold | training split p90 / p95 / p99 "
        "| held-out p90 / p95 / p99 | held-out above the threshold |"
    )
    print("|---|---|---|---|---|")
    for k in SIZES:
        rng = np.random.default_rng(args.seed)
        inside, held_out = [], []
        for _ in range(20):
            for person in sorted(set(labels)):
                theirs = np.flatnonzero(labels == person)
                refs = rng.choice(theirs, k, replace=False)
                inside.append(1.0 - (features[np.setdiff1d(theirs, refs)] @ features[refs].T).max(axis=1))
                held_out.append(1.0 - (test[truth == person] @ features[refs].T).max(axis=1))
        a, b = np.concatenate(inside), np.concatenate(held_out)
        cells = [" / ".join(f"{np.percentile(v, q):.3f}" for q in (90, 95, 99)) for v in (a, b)]
        print(f"| {k} | {table[k]} | {cells[0]} | {cells[1]} | {(b > table[k]).mean():.1%} |")

    print()
    print(
        "| photos per person | threshold | strangers rejected (training split) | held-out end to end, 1-NN |"
    )
    print("|---|---|---|---|")
    for k in (3, 5):
        known, strangers = leave_one_person_out(features, labels, k, np.random.default_rng(args.seed))
        rng = np.random.default_rng(args.seed)
        draws = [draw(plan.train, k, rng) for _ in range(10)]
        for threshold in (table[k], 0.55, 0.6, 0.65):
            right = []
            for chosen in draws:
                refs = l2_normalise(stages.features_of(chosen, faces))
                names = np.array([p.label for p in chosen])
                similarity = test @ refs.T
                accepted = 1.0 - similarity.max(axis=1) <= threshold
                right.append(np.mean((names[similarity.argmax(axis=1)] == truth) & accepted))
            rejected = (strangers["nearest photo (served)"] > threshold).mean()
            print(f"| {k} | {threshold} | {rejected:.0%} | {np.mean(right):.1%} |")

    print()
    print("| photos per person | known faces of the other half above: p99 | p99.5 | p99.9 |")
    print("|---|---|---|---|")
    for k in SIZES:
        above = crossfit(features, labels, k, np.random.default_rng(args.seed), (99, 99.5, 99.9))
        print(f"| {k} | " + " | ".join(f"{v:.2%}" for v in above) + " |")
    return 0


def crossfit(features, labels, k, rng, percentiles, cuts=40, draws=20) -> list[float]:
    """Per percentile: the share of one half's photos above the threshold measured on the other half."""
    above: list[list[float]] = [[] for _ in percentiles]
    people = sorted(set(labels))
    for _ in range(cuts):
        halves = {p: np.array_split(rng.permutation(np.flatnonzero(labels == p)), 2) for p in people}
        inside, other = [], []
        for _ in range(draws):
            for p in people:
                measured, checked = halves[p]
                refs = rng.choice(measured, k, replace=False)
                rest = np.setdiff1d(measured, refs)
                inside.append(1.0 - (features[rest] @ features[refs].T).max(axis=1))
                other.append(1.0 - (features[checked] @ features[refs].T).max(axis=1))
        a, b = np.concatenate(inside), np.concatenate(other)
        for i, q in enumerate(percentiles):
            above[i].append(float((b > np.percentile(a, q)).mean()))
    return [float(np.mean(v)) for v in above]


if __name__ == "__main__":
    raise SystemExit(main())
