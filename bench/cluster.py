"""How well and how fast ``python -m app cluster`` groups an archive of many people.

    .venv/bin/python bench/cluster.py --draws 1 2            # grouping quality on two draws
    .venv/bin/python bench/cluster.py --draws 1 --speed 3    # and cluster vs classify, 3 rounds, both engines
    .venv/bin/python bench/cluster.py --synthetic 100000     # grouping alone on synthetic embeddings
    .venv/bin/python bench/cluster.py --ratios 1.2 1.3 1.4 1.5 1.6   # how GROUPING_RATIO was chosen
    .venv/bin/python bench/cluster.py --blur 0 1 1.5 2 3 4            # how BLURRED_BELOW was chosen

The archive: ``../shared/data/faces24`` holds 24 people's aligned 112 px face crops. A draw
takes ``--faces-per-person`` crops of each at random, pastes 2 to 5 of them (different people)
into each 1024 x 768 photo at random sizes (70 to 200 px) and places on a face-free
background (gradients and shapes), and adds the shared hobbit photos (real photos, some
with several people; the default model knows the five actors, so most of their faces are
named, and the people beside them are strangers). The photos are written to a temporary
folder and deleted: faces24 is for research only and never leaves this machine.

Quality, on the faces24 faces (each detected face matched to the crop it lies on; a
crop the detector misses counts as a face left out): pairwise precision and recall (of
all pairs of faces of one person, the share in one group; of all pairs in one group,
the share of one person), BCubed F1, and the share of faces left in no group (a face the
model names counts as left out too: it is in no group). On the hobbit photos: the
share of the photos' own person named among their faces, and how many faces of people
the model does not know ended up in a group with faces24 faces (a wrong join the pairs do
not count). A second draw (``--draws 1 2``) is other crops in other photos: figures that
hold on both do not depend on one draw.

Speed (``--speed N``): N rounds, alternating which goes first, of ``classify`` and
``cluster`` on the same photos as fresh commands, each engine; wall time and the CPU
time of the command and every process under it (read from ``/proc``), per photo.
``--synthetic N`` times ``app.cluster.grouping.group`` on N embeddings of the served
model's dimension, drawn around N/50 random centres with a spread like real faces'.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np
from batch_ray import CpuAccount  # bench/ is on the path of a bench script
from PIL import Image

from app.artifact.manifest import Manifest, load_manifest, resolve_version_dir
from app.cluster.embedding import joint_for
from app.cluster.faces import BLURRED_BELOW, sharpness
from app.cluster.grouping import GROUPING_RATIO, drop_small, group, grouping_threshold, reach_for
from app.config import PROJECT_ROOT, Settings
from app.model.host import load_recognizer
from app.model.unknown import l2_normalise
from app.pipeline.numerics import cpu_summary

SHARED = PROJECT_ROOT.parent / "shared" / "data"
FACES24 = SHARED / "faces24"
HOBBITS = SHARED / "hobbits"
WIDTH, HEIGHT = 1024, 768


def background(rng: np.random.Generator) -> np.ndarray:
    """A face-free photo: a colour gradient, a few filled shapes and sensor-like noise."""
    x = np.linspace(0, 1, WIDTH)[None, :, None]
    y = np.linspace(0, 1, HEIGHT)[:, None, None]
    image = np.clip(rng.uniform(0, 255, 3) * x + rng.uniform(0, 255, 3) * y, 0, 255).astype(np.uint8)
    image = np.ascontiguousarray(image)
    for _ in range(int(rng.integers(3, 8))):
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        corner = rng.integers(0, [WIDTH, HEIGHT])
        if rng.random() < 0.5:
            far = corner + rng.integers(40, 300, 2)
            cv2.rectangle(image, (int(corner[0]), int(corner[1])), (int(far[0]), int(far[1])), colour, -1)
        else:
            cv2.circle(image, (int(corner[0]), int(corner[1])), int(rng.integers(20, 120)), colour, -1)
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def overlaps(box: tuple[int, int, int], boxes: list[tuple[int, int, int, str]], gap: int = 20) -> bool:
    x, y, size = box
    return any(
        not (x + size + gap < bx or bx + bs + gap < x or y + size + gap < by or by + bs + gap < y)
        for bx, by, bs, _ in boxes
    )


def draw_archive(seed: int, faces_per_person: int, out: Path) -> list[dict]:
    """Write one draw's composite photos into ``out/faces24`` and return where each face is."""
    rng = np.random.default_rng(seed)
    crops = []
    for person in sorted(p.name for p in FACES24.iterdir() if p.is_dir()):
        files = sorted((FACES24 / person).glob("*.png"))
        crops += [(person, files[i]) for i in rng.permutation(len(files))[:faces_per_person]]
    order = [crops[i] for i in rng.permutation(len(crops))]
    folder = out / "faces24"
    folder.mkdir(parents=True)
    truth = []
    while order:
        count = int(rng.integers(2, 6))
        chosen, order = order[:count], order[count:]
        image = background(rng)
        boxes: list[tuple[int, int, int, str]] = []
        for person, path in chosen:
            for _ in range(200):
                size = int(rng.integers(70, 201))
                x, y = int(rng.integers(0, WIDTH - size)), int(rng.integers(0, HEIGHT - size))
                if not overlaps((x, y, size), boxes):
                    break
            else:
                order.append((person, path))  # no room left: into a later photo
                continue
            crop = np.asarray(Image.open(path).convert("RGB"))
            image[y : y + size, x : x + size] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
            boxes.append((x, y, size, person))
        name = f"photo-{len(truth):04d}.jpg"
        Image.fromarray(image).save(folder / name, quality=90)
        truth.append(
            {
                "photo": f"faces24/{name}",
                "faces": [{"x": x, "y": y, "size": s, "person": p} for x, y, s, p in boxes],
            }
        )
    return truth


def add_hobbits(out: Path) -> int:
    """The shared hobbit photos, as they are, under ``out/hobbits/<person>/``."""
    shutil.copytree(HOBBITS, out / "hobbits", ignore=shutil.ignore_patterns("classes.json"))
    return sum(1 for p in (out / "hobbits").rglob("*") if p.is_file())


def iou(box: dict, x: int, y: int, size: int) -> float:
    ix = max(0, min(box["x"] + box["width"], x + size) - max(box["x"], x))
    iy = max(0, min(box["y"] + box["height"], y + size) - max(box["y"], y))
    inter = ix * iy
    return inter / (box["width"] * box["height"] + size * size - inter)


def pairs(labels: list) -> int:
    return sum(n * (n - 1) // 2 for n in Counter(labels).values())


def score(rows: list[dict], truth: list[dict]) -> dict[str, float]:
    """Pairwise precision and recall, BCubed F1 and faces left out, on the faces24 faces; hobbit figures."""
    by_photo = defaultdict(list)
    for row in rows:
        by_photo[row["photo"]].append(row)
    people, groups = [], []  # per faces24 face: its person, and its group (None: in no group)
    for photo in truth:
        for face in photo["faces"]:
            match = max(
                by_photo[photo["photo"]],
                key=lambda r: iou(r["box"], face["x"], face["y"], face["size"]),
                default=None,
            )
            found = match is not None and iou(match["box"], face["x"], face["y"], face["size"]) >= 0.3
            people.append(face["person"])
            groups.append(match["group"] if found else None)
    members = [(p, g) for p, g in zip(people, groups, strict=True) if g is not None]
    together = pairs([g for _, g in members])
    right = pairs(members)
    precision = right / together if together else 1.0
    recall = right / pairs(people)
    group_sizes = Counter(g for _, g in members)
    person_sizes = Counter(people)
    both = Counter(members)
    b_precision = np.mean(
        [both[(p, g)] / group_sizes[g] if g else 1.0 for p, g in zip(people, groups, strict=True)]
    )
    b_recall = np.mean(
        [
            both[(p, g)] / person_sizes[p] if g else 1 / person_sizes[p]
            for p, g in zip(people, groups, strict=True)
        ]
    )
    faces24_groups = set(group_sizes)
    hobbit_rows = [r for r in rows if r["photo"].startswith("hobbits/")]
    hobbit_photos = defaultdict(list)
    for row in hobbit_rows:
        hobbit_photos[row["photo"]].append(row)
    held_out = {f"hobbits/{name}" for name in served_manifest().dataset.get("test_files", [])}
    named = sum(
        any(r["label"] == photo.split("/")[1] for r in faces)
        for photo, faces in hobbit_photos.items()
        if photo in held_out
    )
    return {
        "faces": len(people),
        "people": len(person_sizes),
        "groups": len(group_sizes),
        "precision": precision,
        "recall": recall,
        "bcubed_f1": 2 * b_precision * b_recall / (b_precision + b_recall),
        "left_out": groups.count(None) / len(groups),
        "hobbit_held_out": len(held_out & set(hobbit_photos)),
        "hobbit_named": named / max(1, len(held_out & set(hobbit_photos))),
        "strangers_in_faces24_groups": sum(1 for r in hobbit_rows if r["group"] in faces24_groups),
        "hobbit_faces_grouped": sum(1 for r in hobbit_rows if r["group"] is not None),
    }


def served_manifest() -> Manifest:
    settings = Settings()
    return load_manifest(resolve_version_dir(settings.artifacts_dir, settings.classifier_backend))


def command(*args: str) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """A fresh ``python -m app ...``: its result, wall seconds and CPU seconds.

    The CPU is that of every process under this one while it ran (the command, and with
    ``--engine ray`` the local cluster it starts: its daemons, actors and workers), read from
    ``/proc`` by bench/batch_ray.py's ``CpuAccount``: Ray's processes are not waited for by
    their parents, so the kernel's children times miss them.
    """
    account = CpuAccount()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    used = account.stop()
    if done.returncode != 0:
        raise SystemExit(f"python -m app {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    mine = used.get("this process (driver, or the local engine)", (0.0, 0))[0]
    return done, wall, sum(seconds for seconds, _ in used.values()) - mine


QUALITY_COLUMNS = (
    "draw",
    "photos",
    "faces24 faces",
    "people",
    "groups",
    "pairwise precision",
    "pairwise recall",
    "BCubed F1",
    "faces24 faces left out",
    "held-out hobbit photos: own person named",
    "strangers in faces24 groups",
    "wall s (CPU s)",
)


def table_row(*cells: object) -> None:
    print("| " + " | ".join(str(c) for c in cells) + " |")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def quality(draw: int, faces_per_person: int, engine: str, keep: Path | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        photos = Path(tmp) / "photos"
        truth = draw_archive(draw, faces_per_person, photos)
        hobbits = add_hobbits(photos)
        out = Path(tmp) / "out"
        done, wall, cpu = command("cluster", str(photos), "--out", str(out), "--engine", engine)
        rows = [json.loads(line) for line in (out / "groups.jsonl").read_text().splitlines()]
        if keep is not None:
            shutil.copytree(out, keep / f"draw-{draw}", dirs_exist_ok=True)
        figures = score(rows, truth)
        figures |= {"photos": len(truth) + hobbits, "wall_s": wall, "cpu_s": cpu}
        print(f"draw {draw} ({engine}): {done.stdout.strip()}", file=sys.stderr)
        return figures


def speed(draw: int, faces_per_person: int, rounds: int, engines: list[str]) -> None:
    """cluster against classify on the same photos, fresh commands, alternating order, both engines."""
    with tempfile.TemporaryDirectory(prefix="cluster-speed-") as tmp:
        photos = Path(tmp) / "photos"
        draw_archive(draw, faces_per_person, photos)
        count = add_hobbits(photos) + len(list((photos / "faces24").iterdir()))
        print(f"\n{count} photos; CPU: {cpu_summary()}")
        table_row(
            "round", "engine", "command", "wall s", "photos/s", "CPU per photo", "load average at start"
        )
        table_row(*["---"] * 7)
        for engine in engines:
            for r in range(rounds):
                order = ["classify", "cluster"] if r % 2 == 0 else ["cluster", "classify"]
                for name in order:
                    out = Path(tmp) / f"{name}-{engine}-{r}"
                    target = str(out / "rows.jsonl") if name == "classify" else str(out)
                    if name == "classify":
                        out.mkdir()
                    load = load_average()
                    _, wall, cpu = command(name, str(photos), "--out", target, "--engine", engine)
                    table_row(
                        r + 1,
                        engine,
                        name,
                        f"{wall:.1f}",
                        f"{count / wall:.2f}",
                        f"{cpu / count * 1000:.0f} ms",
                        load,
                    )
                    shutil.rmtree(out)


def synthetic(n: int, seed: int = 0) -> None:
    """``group`` on n embeddings around n/50 random centres, the dimension and threshold faces are grouped at.

    The dimension is the served embedding's and its companion's together (``app.cluster.embedding``).
    """
    settings = Settings()
    version_dir = resolve_version_dir(settings.artifacts_dir, settings.classifier_backend)
    manifest = load_manifest(version_dir)
    threshold = grouping_threshold(manifest)
    joint = joint_for(manifest)
    dimension = int(np.load(version_dir / "references.npy").shape[1])
    if joint is not None:
        dimension += joint.load().feature_shape[0]
    rng = np.random.default_rng(seed)
    people = max(1, n // 50)
    centres = rng.normal(size=(people, dimension))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    who = rng.integers(0, people, n)
    # Two faces of one person then lie a cosine distance of about spread / (1 + spread) apart:
    # the threshold's own scale, so the groups are neither trivial nor hopeless.
    spread = (threshold / 1.5) / (1 - threshold / 1.5)
    embeddings = (centres[who] + rng.normal(size=(n, dimension)) * math.sqrt(spread / dimension)).astype(
        np.float32
    )
    load = load_average()
    start = time.perf_counter()
    cpu_start = time.process_time()
    labels = group(embeddings, threshold, reach_for(joint))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    same = pairs(list(zip(who, labels, strict=True)))
    precision, recall = same / pairs(list(labels)), same / pairs(list(who))
    print(
        f"{n} embeddings, {dimension}-d, {people} centres, threshold {threshold:.3f}: {wall:.1f} s wall,"
        f" {cpu:.1f} s CPU; {labels.max() + 1} groups, pairwise precision {precision:.4f}, recall"
        f" {recall:.4f}; load average {load}; CPU {cpu_summary()}"
    )


def training_faces() -> tuple[np.ndarray, np.ndarray, float, float]:
    """The served model's training faces as ``cluster`` groups them, their people, and the unknown threshold.

    The training split's photos (the dataset minus its ``test_files``), each face the model
    learnt (the one nearest to its person's references, ``references.npy``), its embedding
    joined with its companion's (``app.cluster.embedding``) as ``python -m app cluster`` joins
    them; the threshold on that scale, and the re-ranking's reach for them.
    """
    settings = Settings()
    recognizer = load_recognizer(settings)
    manifest = recognizer.manifest
    assert recognizer.unknown is not None and recognizer.unknown.labels is not None, "no unknown rule"
    joint = joint_for(manifest)
    companion = joint.load() if joint is not None else None
    root = (PROJECT_ROOT / str(manifest.dataset["root"])).resolve()
    held_out = set(manifest.dataset.get("test_files", []))
    rows, people = [], []
    for person in manifest.class_ids:
        theirs = recognizer.unknown.references[np.asarray(recognizer.unknown.labels) == person]
        for path in sorted((root / person).iterdir()):
            if f"{person}/{path.name}" in held_out or not path.is_file():
                continue
            photo = recognizer.decode(path.read_bytes())
            found = recognizer.recognize_decoded(photo)
            if found.features is None:
                continue
            nearest = int((l2_normalise(found.features) @ theirs.T).max(axis=1).argmax())  # unit rows
            row = found.features[nearest : nearest + 1]
            if joint is not None and companion is not None:
                second = companion.extract([companion.crop(photo.rgb, found.detections[nearest])])
                row = joint.join(row, second)
            rows.append(row[0])
            people.append(person)
    return np.array(rows), np.array(people), grouping_threshold(manifest) / GROUPING_RATIO, reach_for(joint)


def ratios(candidates: list[float]) -> None:
    """Average linkage on the served model's own training faces at each ratio x its unknown threshold.

    How ``GROUPING_RATIO`` was chosen: the training faces (``training_faces``: the split the
    unknown threshold is calibrated on), labelled by their folders, grouped at each ratio; the
    ratio is the middle of those at which they form one group per person.
    """
    faces, people, unknown, reach = training_faces()
    print(f"{len(faces)} training faces of {len(set(people))} people; unknown threshold {unknown:.4f}")
    table_row("ratio", "threshold", "groups", "pairwise precision", "pairwise recall", "faces alone")
    table_row(*["---"] * 6)
    for ratio in candidates:
        labels = drop_small(group(faces, ratio * unknown, reach))
        members = [(p, g) for p, g in zip(people, labels, strict=True) if g >= 0]
        right, together = pairs(members), pairs([g for _, g in members])
        table_row(
            ratio,
            f"{ratio * unknown:.4f}",
            len({g for _, g in members}),
            f"{right / together if together else 1.0:.4f}",
            f"{right / pairs(list(people)):.4f}",
            int((labels < 0).sum()),
        )


def blur(sigmas: list[float]) -> None:
    """How far blur moves a face's embedding from its sharp self, against the face's ``sharpness``.

    How ``BLURRED_BELOW`` was chosen: every other photo of the served model's training split
    (the split its unknown threshold is calibrated on), the largest face, blurred with a
    Gaussian of ``sigma`` x (face width / 64) px and embedded at the same box; the table gives
    the sharpness and the cosine distance to the unblurred face's embedding by sigma.
    """
    recognizer = load_recognizer(Settings())
    manifest = recognizer.manifest
    held_out = set(manifest.dataset.get("test_files", []))
    root = (PROJECT_ROOT / manifest.dataset["root"]).resolve()
    photos = [p for p in sorted(root.glob("*/*.jpg")) if f"{p.parent.name}/{p.name}" not in held_out][::2]
    found: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for path in photos:
        photo = recognizer.decode(path.read_bytes())
        faces = recognizer.detector.detect(photo.rgb)
        if not faces:
            continue
        face = max(faces, key=lambda f: f.box.area)
        sharp = l2_normalise(recognizer.extractor.extract([recognizer.extractor.crop(photo.rgb, face)]))[0]
        for sigma in sigmas:
            rgb = cv2.GaussianBlur(photo.rgb, (0, 0), sigma * face.box.width / 64) if sigma else photo.rgb
            moved = l2_normalise(recognizer.extractor.extract([recognizer.extractor.crop(rgb, face)]))[0]
            found[sigma].append((sharpness(rgb, face.box), 1.0 - float(moved @ sharp)))
    unknown = manifest.unknown.threshold
    print(f"{len(found[sigmas[0]])} faces; unknown threshold {unknown}; BLURRED_BELOW {BLURRED_BELOW}")
    table_row(
        "sigma per 64 px",
        "sharpness p10",
        "p50",
        "p90",
        "embedding moved p50",
        "p90",
        "moved > threshold / 2",
    )
    table_row(*["---"] * 7)
    for sigma in sigmas:
        values = np.array(found[sigma])
        s10, s50, s90 = np.percentile(values[:, 0], [10, 50, 90])
        m50, m90 = np.percentile(values[:, 1], [50, 90])
        far = (values[:, 1] > (unknown or 0) / 2).mean()
        table_row(sigma, f"{s10:.0f}", f"{s50:.0f}", f"{s90:.0f}", f"{m50:.3f}", f"{m90:.3f}", f"{far:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--draws", type=int, nargs="*", default=[], help="seeds of the archives to score")
    parser.add_argument("--faces-per-person", type=int, default=15)
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument(
        "--speed", type=int, default=0, help="rounds of cluster vs classify on the first draw"
    )
    parser.add_argument("--speed-engines", nargs="+", choices=("local", "ray"), default=["local", "ray"])
    parser.add_argument("--synthetic", type=int, nargs="*", default=[], help="numbers of embeddings to group")
    parser.add_argument("--keep", type=Path, help="copy each draw's output folder here (to look at)")
    parser.add_argument(
        "--ratios", type=float, nargs="*", default=[], help="grouping ratios to try on the model"
    )
    parser.add_argument(
        "--blur", type=float, nargs="*", default=[], help="blurs (sigma per 64 px of face) to try"
    )
    args = parser.parse_args()
    if args.draws:
        print(f"CPU: {cpu_summary()}; load average at start {load_average()}")
        table_row(*QUALITY_COLUMNS)
        table_row(*["---"] * len(QUALITY_COLUMNS))
        for draw in args.draws:
            f = quality(draw, args.faces_per_person, args.engine, args.keep)
            table_row(
                draw,
                f["photos"],
                f["faces"],
                f["people"],
                f["groups"],
                f"{f['precision']:.4f}",
                f"{f['recall']:.4f}",
                f"{f['bcubed_f1']:.4f}",
                f"{f['left_out']:.1%}",
                f"{f['hobbit_named']:.1%} of {f['hobbit_held_out']}",
                f["strangers_in_faces24_groups"],
                f"{f['wall_s']:.0f} ({f['cpu_s']:.0f})",
            )
    if args.speed:
        speed(args.draws[0] if args.draws else 1, args.faces_per_person, args.speed, args.speed_engines)
    for n in args.synthetic:
        synthetic(n)
    if args.ratios:
        ratios(args.ratios)
    if args.blur:
        blur(args.blur)


if __name__ == "__main__":
    main()
