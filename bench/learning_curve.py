"""Learning curve: end-to-end accuracy on the held-out 40 against training photos per person.

Run by hand (not in CI); the embedding cache makes every run after the first take seconds:

    .venv/bin/python bench/learning_curve.py                 # table + docs/learning_curve.png (10 draws)
    .venv/bin/python bench/learning_curve.py --thresholds    # the few-photo unknown defaults
    .venv/bin/python bench/learning_curve.py --newcomer      # one person with few photos among many
    .venv/bin/python bench/learning_curve.py --features-params '{"crop": "box"}'   # FaceNet's old crop
    .venv/bin/python bench/learning_curve.py --features dlib --out /tmp/dlib.png    # another embedding
    .venv/bin/python bench/learning_curve.py --mirror both --out /tmp/mirror.png    # mirrored faces, issue 24

The split is the usual one (seed 42, 0.2: 40 held-out photos). For k photos per
person, each draw picks k of each person's training-split photos at random, trains
an svm artifact on them with the training package (model choice, unknown threshold
and all), saves it, loads it as the service does and answers the 40 held-out
photos from their faces; a photo answered "unknown" or without its face counts as
wrong. "closed set" is the same model without the unknown rule, for reference.
"strangers rejected" is the other side of the unknown rule: in each draw, each person
in turn is left out of the training photos (leave one person out), the threshold is
chosen again from the remaining people's photos exactly as training chooses it, and the
left-out person's photos (all of them, 39-40) are answered; the column is the share
answered "unknown", over every person and draw.

``--thresholds`` measures, on the training split only (the 40 held-out photos are
never looked at), how far a person's photos lie from the nearest of k reference
photos of them: the 99th percentile is the default unknown threshold for k photos
per person (``training/unknown_threshold.py``).

``--mirror`` adds each training face's mirrored crop (``bench/mirroring.py``) to the
classifier's rows, the unknown rule's references, or both; the few-photo defaults with
mirrored references are measured first, the ``--thresholds`` way on the training split, and
used in the curve (with ``--thresholds``, printed).

``--newcomer`` measures a folder of mixed sizes: each person in turn is the stranger,
and among the other four each in turn is a newcomer with k of their training photos
beside three people with all of theirs. It scores the four people's held-out photos
end to end and the stranger's photos (answered "unknown" or not) under the rule
training now sets (each person's default for their own photos) and under the rule it
set before (one default for everyone, for the fewest photos of anyone).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from mirroring import (
    MIRRORS,
    mirror_lookup,
    mirror_rows,
    mirrored,
    nearest_of_both,
    refit_with_mirrors,
    unknown_rule,
)

from app.labelled.folders import Photo, scan
from app.model.recognizer import Recognizer
from app.model.same_person import default_thresholds
from app.model.unknown import UnknownRule
from app.pipeline.features import create_extractor
from training.cache import EmbeddingCache, default_cache_dir
from training.cached_scores import answer_from_faces
from training.fitting import FitOptions
from training.run_config import DEFAULT_DETECTOR, DEFAULT_FEATURES, new_detector
from training.split import plan_evaluation
from training.train import Stages, usable_photos
from training.trained_artifact import fit_artifact

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hobbits"
SIZES = (1, 2, 3, 5, 10, None)  # None: every training photo
THRESHOLD_SIZES = (1, 2, 3, 5, 10)
PERCENTILE = 99.0
#: Draws of k reference photos per person for a default (the committed ones were measured with 20);
#: the curve measures mirrored defaults with as many, whatever its own ``--draws``.
THRESHOLD_DRAWS = 20


def shared_split(description: str | None, extra=None):
    """Parse the usual options; return them, the stages, the dataset, every photo's faces and the split.

    ``extra(parser)`` adds a script's own options. The split is the usual one (0.2, ``--seed``).
    The stages are a new model's (training's defaults) unless ``--detector``, ``--features`` and
    ``--features-params`` say otherwise.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, help="face detector (default: training's)")
    parser.add_argument("--features", default=DEFAULT_FEATURES, help="embedding (default: training's)")
    parser.add_argument(
        "--features-params",
        type=json.loads,
        default=None,
        help="the embedding's parameters as JSON, e.g. '{\"crop\": \"box\"}' (default: a new model's)",
    )
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    detector = new_detector(args.detector)
    extractor = create_extractor(args.features, args.features_params)
    stages = Stages(detector, extractor, EmbeddingCache.for_stages(args.cache_dir, detector, extractor))
    dataset, faces = usable_photos(scan(args.data), stages)
    return args, stages, dataset, faces, plan_evaluation(dataset.photos, 0.2, args.seed)


def draw(train: list[Photo], k: int | None, rng: np.random.Generator) -> list[Photo]:
    """k random training photos of each person (all of them when k is None), in a stable order."""
    if k is None:
        return train
    chosen = []
    for person in sorted({p.label for p in train}):
        theirs = [p for p in train if p.label == person]
        chosen += [theirs[i] for i in sorted(rng.choice(len(theirs), k, replace=False))]
    return chosen


def largest_face(entry) -> np.ndarray:
    """The feature row of a photo's largest face: the face whose label answers the photo."""
    return entry.features[int(np.argmax([f.box.area for f in entry.faces]))]


def strangers_rejected(
    stages: Stages, chosen: list[Photo], everyone: list[Photo], faces, mirror: Mirror | None = None
) -> float:
    """Leave each person out of ``chosen`` in turn: the share of their photos answered "unknown".

    Only the unknown rule decides this (a face it flags is "unknown" whatever the classifier
    says), so no classifier is fitted: the threshold is chosen from the other people's
    photos as training chooses it, over the same references (with their mirrors when
    ``mirror`` puts them in the references).
    """
    rejected = []
    for person in sorted({p.label for p in chosen}):
        known = [p for p in chosen if p.label != person]
        features = stages.features_of(known, faces)
        labels = np.array([p.label for p in known])
        rule = (
            unknown_rule(stages, features, labels, None, None)
            if mirror is None
            else mirror.unknown_rule(stages, known, features, labels, faces)
        )
        stranger = np.stack([largest_face(faces[p]) for p in everyone if p.label == person])
        rejected.append(np.zeros(len(stranger), bool) if rule is None else rule.is_unknown(stranger))
    return float(np.concatenate(rejected).mean())


class Mirror:
    """Where the mirrored training faces go (``--mirror``), their embeddings, and the few-photo
    defaults measured with mirrored references."""

    def __init__(self, where: str, faces, mirrors, defaults: dict[int, float] | None) -> None:
        self.where = where
        self.mirrors = mirrors
        self.defaults = defaults
        self.mirror_of = mirror_lookup(faces, mirrors) if where == "queries" else None

    @property
    def classifier(self) -> bool:
        return self.where in ("classifier", "both")

    def rows_of(self, photos: list[Photo], rows: np.ndarray, faces) -> np.ndarray:
        return mirror_rows(photos, rows, faces, self.mirrors)

    def unknown_rule(self, stages: Stages, photos: list[Photo], rows: np.ndarray, labels, faces):
        """The rule on ``photos`` (their faces ``rows``): mirrored references, mirrored queries, or plain."""
        mirrored_rows = (
            self.rows_of(photos, rows, faces) if self.where in ("references", "both", "queries") else None
        )
        return unknown_rule(stages, rows, labels, mirrored_rows, self.defaults, self.mirror_of)


def curve(
    stages: Stages, classes, train, test, faces, draws: int, seed: int, mirror: Mirror | None = None
) -> list[dict]:
    rows = []
    everyone = [*train, *test]
    with tempfile.TemporaryDirectory() as tmp:
        for k in SIZES:
            rng = np.random.default_rng(seed)
            scores, closed, strangers, winners, sources = [], [], [], Counter(), Counter()
            for d in range(1 if k is None else draws):
                chosen = draw(train, k, rng)
                own, labels = stages.features_of(chosen, faces), np.array([p.label for p in chosen])
                artifact = fit_artifact(
                    own, labels, classes, stages.detector, stages.extractor, FitOptions("svm", seed)
                )
                if mirror is not None and mirror.classifier:
                    both = np.concatenate([own, mirror.rows_of(chosen, own, faces)])
                    refit_with_mirrors(artifact.model, both, np.tile(labels, 2))
                version_dir = Path(tmp) / f"k{k}-{d}"
                artifact.save(version_dir)
                recognizer = Recognizer.from_artifact(version_dir)
                if mirror is not None:
                    # The rule training would set on the photos' own faces, plus mirrors if asked.
                    recognizer.unknown = mirror.unknown_rule(stages, chosen, own, labels, faces)
                answers = [answer_from_faces(recognizer, p, faces[p]) for p in test]
                scores.append(np.mean([a.label == a.photo.label for a in answers]))
                recognizer.unknown = None
                answers = [answer_from_faces(recognizer, p, faces[p]) for p in test]
                closed.append(np.mean([a.label == a.photo.label for a in answers]))
                strangers.append(strangers_rejected(stages, chosen, everyone, faces, mirror))
                winners[artifact.manifest.classifier["winner"]] += 1
                sources[artifact.threshold.summary["source"]] += 1
            rows.append(
                {
                    "k": "all" if k is None else k,
                    "draws": len(scores),
                    "mean": float(np.mean(scores)),
                    "worst": float(np.min(scores)),
                    "best": float(np.max(scores)),
                    "closed_mean": float(np.mean(closed)),
                    "strangers_rejected": float(np.mean(strangers)),
                    "winners": dict(winners),
                    "threshold": dict(sources),
                }
            )
            print(rows[-1], flush=True)
    return rows


def thresholds(
    stages: Stages,
    train: list[Photo],
    faces,
    draws: int,
    seed: int,
    percentile: float = PERCENTILE,
    mirrors=None,
    queries: bool = False,
) -> dict[int, float]:
    """Per k: the percentile (99th) distance from a person's other photos to the nearest of k of theirs
    (with ``mirrors``, every photo's mirrored faces: of k and their mirrors, or, ``queries``, from
    the nearer of each other photo and its mirror)."""
    features = stages.features_of(train, faces)
    flipped = None if mirrors is None else mirror_rows(train, features, faces, mirrors)
    labels = np.array([p.label for p in train])
    rng = np.random.default_rng(seed)
    table = {}
    for k in THRESHOLD_SIZES:
        distances = []
        for _ in range(draws):
            for person in np.unique(labels):
                theirs = np.flatnonzero(labels == person)
                refs = rng.choice(theirs, k, replace=False)
                rest = np.setdiff1d(theirs, refs)
                if flipped is None:
                    distances.append(nearest_of_both(features[rest], features[refs], None))
                elif queries:
                    distances.append(nearest_of_both(features[rest], features[refs], None, flipped[rest]))
                else:
                    distances.append(nearest_of_both(features[rest], features[refs], flipped[refs]))
        table[k] = round(float(np.percentile(np.concatenate(distances), percentile)), 3)
    return table


def newcomer(stages: Stages, classes, train, test, faces, seed: int) -> list[dict]:
    """Strangers rejected and held-out accuracy with one newcomer of k photos: per person, and as before."""
    people = sorted({p.label for p in train})
    everyone = [*train, *test]
    table = default_thresholds(stages.extractor.name, stages.extractor.params)["by_photos_per_person"]
    rows = []
    for k in (1, 3, 5):
        rng = np.random.default_rng(seed)
        scores: dict[str, list[float]] = {"now": [], "before": []}
        rejected: dict[str, list[np.ndarray]] = {"now": [], "before": []}
        for stranger in people:
            for new in (p for p in people if p != stranger):
                theirs = [p for p in train if p.label == new]
                chosen = [p for p in train if p.label not in (stranger, new)]
                chosen += [theirs[i] for i in sorted(rng.choice(len(theirs), k, replace=False))]
                enrolled = [c for c in classes if c.id != stranger]
                features = stages.features_of(chosen, faces)
                labels = np.array([p.label for p in chosen])
                artifact = fit_artifact(
                    features, labels, enrolled, stages.detector, stages.extractor, FitOptions("svm", seed)
                )
                before = table[max(n for n in table if n <= k)]
                known = [p for p in test if p.label != stranger]
                strangers = np.stack([largest_face(faces[p]) for p in everyone if p.label == stranger])
                for rule in ("now", "before"):
                    recognizer = artifact.recognizer(stages.detector, stages.extractor)
                    if rule == "before":
                        recognizer.unknown = UnknownRule(features, before)
                    assert recognizer.unknown is not None
                    answers = [answer_from_faces(recognizer, p, faces[p]) for p in known]
                    scores[rule].append(float(np.mean([a.label == a.photo.label for a in answers])))
                    rejected[rule].append(recognizer.unknown.is_unknown(strangers))
        rows.append(
            {
                "k": k,
                "models": len(scores["now"]),
                **{f"{rule}_accuracy": float(np.mean(scores[rule])) for rule in scores},
                **{f"{rule}_rejected": float(np.concatenate(rejected[rule]).mean()) for rule in rejected},
            }
        )
        print(rows[-1], flush=True)
    return rows


def plot(rows: list[dict], path: Path, title: str) -> None:
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 4))
    mean = [100 * r["mean"] for r in rows]
    ax.fill_between(
        x,
        [100 * r["worst"] for r in rows],
        [100 * r["best"] for r in rows],
        alpha=0.2,
        label="worst to best draw",
    )
    ax.plot(x, mean, marker="o", label="end to end (unknown rule on), mean")
    ax.plot(x, [100 * r["closed_mean"] for r in rows], linestyle="--", marker=".", label="closed set, mean")
    strangers = [100 * r["strangers_rejected"] for r in rows]
    ax.plot(x, strangers, linestyle=":", marker="s", color="tab:red", label="strangers answered unknown")
    ax.set_xticks(x, [str(r["k"]) for r in rows])
    ax.set_xlabel("training photos per person")
    ax.set_ylabel("% of photos")
    ax.set_ylim(max(0, min(*strangers, *mean) - 5), 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--draws", type=int, default=10, help="random draws per size (default 10)")
        parser.add_argument("--out", type=Path, default=ROOT / "docs" / "learning_curve.png")
        parser.add_argument("--thresholds", action="store_true", help="measure the unknown defaults instead")
        parser.add_argument(
            "--percentile", type=float, default=PERCENTILE, help="with --thresholds: which one (default 99)"
        )
        parser.add_argument("--newcomer", action="store_true", help="one person with few photos among many")
        parser.add_argument(
            "--mirror",
            choices=MIRRORS,
            default="none",
            help="mirrored training faces to the classifier, the unknown rule's references, or both",
        )

    args, stages, dataset, faces, plan = shared_split(__doc__, options)
    mirror = None
    if args.mirror != "none":
        mirrors = mirrored(stages, [*plan.train, *plan.test], faces)
        table = None
        if args.mirror != "classifier":  # the rule sees mirrors: its few-photo defaults measured again
            queries = args.mirror == "queries"
            table = thresholds(
                stages,
                plan.train,
                faces,
                max(args.draws, THRESHOLD_DRAWS) if args.thresholds else THRESHOLD_DRAWS,
                args.seed,
                args.percentile,
                mirrors=mirrors,
                queries=queries,
            )
            print(f"few-photo defaults, mirrors to {args.mirror} (training split):", table, flush=True)
        mirror = Mirror(args.mirror, faces, mirrors, table)
    if args.thresholds:
        if mirror is None or mirror.defaults is None:
            table = thresholds(
                stages, plan.train, faces, max(args.draws, THRESHOLD_DRAWS), args.seed, args.percentile
            )
            what = f"p{args.percentile:g} distance to the nearest of k reference photos"
            print(f"{what}, training split:", table)
        return 0
    if args.newcomer:
        print(
            "| newcomer's photos | models | strangers rejected, before → now "
            "| held-out end to end (4 people), before → now |"
        )
        print("|---|---|---|---|")
        for r in newcomer(stages, dataset.classes, plan.train, plan.test, faces, args.seed):
            print(
                f"| {r['k']} | {r['models']} | {r['before_rejected']:.1%} → {r['now_rejected']:.1%} "
                f"| {r['before_accuracy']:.1%} → {r['now_accuracy']:.1%} |"
            )
        return 0
    rows = curve(stages, dataset.classes, plan.train, plan.test, faces, args.draws, args.seed, mirror)
    extractor = stages.extractor
    title = f"svm backend, {stages.detector.name} + {extractor.name} {extractor.params}"
    plot(rows, args.out, title if mirror is None else f"{title}, mirrors to {mirror.where}")
    print(
        "| photos per person | draws | end to end, mean | worst draw | best draw | closed set, mean "
        "| strangers rejected | classifier chosen | unknown threshold |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['k']} | {r['draws']} | {r['mean']:.1%} | {r['worst']:.1%} | {r['best']:.1%} "
            f"| {r['closed_mean']:.1%} | {r['strangers_rejected']:.1%} "
            f"| {', '.join(f'{n} ×{c}' for n, c in r['winners'].items())} "
            f"| {', '.join(f'{n} ×{c}' for n, c in r['threshold'].items())} |"
        )
    print(f"plot: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
