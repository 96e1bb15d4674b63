"""End-to-end accuracy of a model on a photo folder, and leave-one-person-out "unknown" figures.

Run by hand (not in CI):

    # the committed model on its own held-out test photos
    .venv/bin/python bench/accuracy.py --backend svm --test-split
    # any labelled folder (<root>/<person>/*.jpg); people the model does not know must come back "unknown"
    .venv/bin/python bench/accuracy.py --backend svm --data /path/to/photos
    # train on four people, treat the fifth as a stranger, for each person in turn
    .venv/bin/python bench/accuracy.py --backend svm --leave-one-out

A photo's answer is the label of its largest face; a photo with no face found is wrong.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from app.artifact.manifest import load_manifest, resolve_version_dir
from app.labelled.folders import Photo, scan
from app.labelled.scores import answer_photos, end_to_end_metrics
from app.model.recognizer import UNKNOWN, Recognizer
from training.split import plan_evaluation
from training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent

DATA = ROOT.parent / "shared" / "data" / "hobbits"


def score_folder(recognizer: Recognizer, photos: list[Photo]) -> dict:
    """Known people scored as usual; anybody else is right only when answered ``unknown``."""
    classes = recognizer.classes
    known = [p for p in photos if p.label in classes]
    strangers = [p for p in photos if p.label not in classes]
    result = {"known": end_to_end_metrics(answer_photos(recognizer, known), classes) if known else None}
    if strangers:
        answers = answer_photos(recognizer, strangers, "strangers")
        result["strangers"] = {
            "photos": len(answers),
            "rejected_as_unknown": sum(a.label == UNKNOWN for a in answers) / len(answers),
            "no_face": sum(not a.all_labels for a in answers),
        }
    return result


def leave_one_out(data: Path, backend: str, quick: bool) -> list[dict]:
    """Per person: train on the others' training photos; score the others' test photos and all of theirs."""
    dataset = scan(data)
    rows = []
    with tempfile.TemporaryDirectory() as artifacts:
        for person in dataset.class_ids:
            version_dir = train(
                TrainConfig(
                    data=data,
                    artifacts=Path(artifacts),
                    backend=backend,
                    version=f"without-{person}",
                    exclude_classes=(person,),
                    quick=quick,
                )
            )
            recognizer = Recognizer.from_artifact(version_dir)
            test = plan_evaluation(dataset.photos, 0.2, 42).test
            photos = [p for p in test if p.label != person] + [p for p in dataset.photos if p.label == person]
            scores = score_folder(recognizer, photos)
            rows.append(
                {
                    "stranger": person,
                    "threshold": recognizer.unknown.threshold if recognizer.unknown else None,
                    "known_correct": scores["known"]["accuracy"],
                    "known_photos": scores["known"]["test_photos"],
                    "known_errors": scores["known"]["errors"],
                    "stranger_rejected": scores["strangers"]["rejected_as_unknown"],
                    "stranger_photos": scores["strangers"]["photos"],
                }
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="svm")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--test-split", action="store_true", help="only the model's own held-out photos")
    parser.add_argument("--leave-one-out", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny model search in --leave-one-out")
    args = parser.parse_args()

    if args.leave_one_out:
        rows = leave_one_out(args.data, args.backend, args.quick)
        print("| stranger | threshold | known correct | stranger rejected |")
        print("|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['stranger']} | {r['threshold']:.3f} | {r['known_correct']:.1%} of {r['known_photos']} "
                f"| {r['stranger_rejected']:.1%} of {r['stranger_photos']} |"
            )
        print(json.dumps(rows, indent=1))
        return 0

    version_dir = resolve_version_dir(args.artifacts, args.backend)
    recognizer = Recognizer.from_artifact(version_dir)
    photos = scan(args.data).photos
    if args.test_split:
        wanted = set(load_manifest(version_dir).dataset["test_files"])
        photos = [p for p in photos if f"{p.label}/{p.path.name}" in wanted]
    scores = score_folder(recognizer, photos)
    known = scores["known"]
    print(
        f"{args.backend}/{version_dir.name}: {known['accuracy']:.1%} end to end on "
        f"{known['test_photos']} photos (person among the faces: {known['person_found']:.1%})"
    )
    for name, row in known["per_class"].items():
        print(f"  {name}: recall {row['recall']:.1%}, precision {row['precision']:.1%}")
    for error in known["errors"]:
        print(f"  wrong: {error}")
    if "strangers" in scores:
        print(f"strangers: {scores['strangers']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
