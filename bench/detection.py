"""Detection benchmark: recall by face height, group composites, false positives, time per photo.

Run by hand, not in CI. No public detection set is reachable here, so every image is
generated, with a fixed seed, from the shared photos and from synthetic face-free images:

    .venv/bin/python bench/detection.py                        # the default search
    .venv/bin/python bench/detection.py --thorough             # what ?thorough=true runs
    .venv/bin/python bench/detection.py --params '{"models": ["full_range", "short_range"],
        "min_face": 0, "quarter_turns": false}'                # the detector before issue 11
    .venv/bin/python bench/detection.py --sections accuracy --backend svm
                                                               # names by face height, held-out photos
    .venv/bin/python bench/detection.py --detector centerface --params '{"max_side": 1280}'
                                                               # another registered detector
    .venv/bin/python bench/detection.py --sections time --baseline default
                                                               # timed against today's default

Faces: the shared photos in which the detector before issue 11 (the reference) finds
exactly one face at least 64 px high; its box is the ground truth. A face is found when a
detection's centre lies within half a face height of the truth's and its height is within
a factor of two. Sections:

- recall: faces cut out with their surroundings, scaled to 12..96 px high and pasted at
  random on face-free backgrounds of 640 x 480 and 1280 x 960, blurred or not, JPEG 30..90.
- groups: collages (4 x 3, 6 x 4, 8 x 6 photos on 1280 x 960) and crowds (20 faces of
  mixed heights, 16..128 px, on one background).
- turned: the one-face photos turned 90, 180 and 270 degrees (no EXIF tag), and with a third
  or a half of the face outside the frame.
- free: synthetic face-free images (textures, shapes and text, noise, crops of scikit-learn's
  two sample photos); every detection there is a false positive.
- time: the detector alone on photos of several sizes, median of repeated runs, alternating
  with the reference's runs (``--baseline default``: the default BlazeFace search's) on the
  same photo.
- accuracy: the model's held-out photos scaled so the main face is 16..96 px high, through
  the whole recognizer: right name, "unknown", wrong name, or not found.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_images

from app.artifact.manifest import load_manifest, resolve_version_dir
from app.model.recognizer import UNKNOWN, Recognizer
from app.pipeline.decode import decode_image
from app.pipeline.detect import DETECTORS, Box, Detection, FaceDetector, create_detector
from app.pipeline.detect.blazeface import WHOLE_PHOTO_ONLY

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hobbits"

HEIGHTS = (12, 16, 20, 24, 32, 48, 96)
CANVASES = ((640, 480), (1280, 960))
COLLAGES = ((4, 3), (6, 4), (8, 6))
TIME_SIZES = ((640, 480), (1280, 960), (1920, 1440), (4000, 3000))
ACCURACY_HEIGHTS = (16, 20, 24, 32, 48, 64, 96)
FACE_FREE_COUNT = 160


@dataclass(frozen=True)
class Source:
    """A shared photo with one face; ``box`` is where it is."""

    name: str
    label: str
    rgb: np.ndarray
    box: Box


@dataclass
class Tally:
    """Found / total, for one row of a table."""

    found: int = 0
    total: int = 0
    extra: int = 0

    def add(self, found: int, total: int, extra: int = 0) -> None:
        self.found += found
        self.total += total
        self.extra += extra

    def __str__(self) -> str:
        return f"{self.found / self.total:.1%} ({self.found}/{self.total})" if self.total else "-"


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return decode_image(buffer.getvalue())


def degrade(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sometimes a little blur, always a JPEG of quality 30 to 90."""
    sigma = float(rng.choice([0.0, 0.0, 0.6, 1.2]))
    if sigma:
        rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
    return jpeg_round_trip(rgb, int(rng.integers(30, 91)))


def matches(truth: list[Box], found: list[Detection]) -> tuple[list[bool], int]:
    """Which true faces were found, and how many detections match none."""
    used: set[int] = set()
    hits = []
    for box in truth:
        cx, cy = box.x + box.width / 2, box.y + box.height / 2
        hit = False
        for i, face in enumerate(found):
            b = face.box
            if i in used or not 0.5 <= b.height / box.height <= 2.0:
                continue
            if (
                abs(b.x + b.width / 2 - cx) <= box.height / 2
                and abs(b.y + b.height / 2 - cy) <= box.height / 2
            ):
                used.add(i)
                hit = True
                break
        hits.append(hit)
    return hits, len(found) - len(used)


# --- face-free images ------------------------------------------------------------------


def face_free_images(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Images with structure a detector can mistake for a face, and no face."""
    samples = load_sample_images().images  # a Chinese temple and a flower
    makers: list[Callable[[int, int], np.ndarray]] = [
        lambda w, h: _blobs(w, h, rng),
        lambda w, h: _shapes(w, h, rng),
        lambda w, h: _stripes(w, h, rng),
        lambda w, h: (rng.random((h, w, 3)) * 255).astype(np.uint8),
        lambda w, h: _photo_crop(samples[int(rng.integers(len(samples)))], w, h, rng),
        lambda w, h: _photo_crop(samples[int(rng.integers(len(samples)))], w, h, rng),
    ]
    images = []
    for i in range(count):
        width = int(rng.integers(320, 1281))
        height = int(width * rng.uniform(0.6, 1.4))
        images.append(degrade(makers[i % len(makers)](width, height), rng))
    return images


def _blobs(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth colour noise at a random scale: skin-like patches and dark spots."""
    cells = int(rng.integers(3, 40))
    small = rng.random((cells, max(2, cells * width // height), 3)).astype(np.float32)
    return (cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(
        np.uint8
    )


def _shapes(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A gradient with circles, ellipses, rectangles and text (dots and arcs, as eyes and mouths)."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = rng.integers(0, 256, 3)
    image = (image * np.linspace(0.4, 1.0, width)[None, :, None]).astype(np.uint8)
    for _ in range(int(rng.integers(5, 30))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(4, max(5, min(width, height) // 4)))
        kind = rng.integers(4)
        if kind == 0:
            cv2.circle(image, (x, y), size, colour, -1)
        elif kind == 1:
            cv2.ellipse(image, (x, y), (size, size // 2 + 1), int(rng.integers(180)), 0, 360, colour, -1)
        elif kind == 2:
            cv2.rectangle(image, (x, y), (x + size, y + size // 2), colour, -1)
        else:
            cv2.putText(image, "abc 123", (x, y), cv2.FONT_HERSHEY_SIMPLEX, size / 30, colour, 2)
    return image


def _stripes(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Stripes or a checkerboard at a random period and angle."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 80)
    wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    if rng.random() < 0.5:
        wave = wave * np.sin((-xx * np.sin(angle) + yy * np.cos(angle)) * 2 * np.pi / period)
    colours = rng.integers(0, 256, (2, 3)).astype(np.float32)
    mix = (wave[..., None] + 1) / 2
    return (colours[0] * mix + colours[1] * (1 - mix)).astype(np.uint8)


def _photo_crop(photo: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of a face-free photo, maybe mirrored, resized to ``width`` x ``height``."""
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.3, 1.0)
    cw, ch = max(16, int(pw * scale)), max(16, int(ph * scale))
    x, y = int(rng.integers(0, pw - cw + 1)), int(rng.integers(0, ph - ch + 1))
    crop = photo[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return cv2.resize(np.ascontiguousarray(crop), (width, height), interpolation=cv2.INTER_AREA)


def background(width: int, height: int, rng: np.random.Generator, free: list[np.ndarray]) -> np.ndarray:
    base = free[int(rng.integers(len(free)))]
    return cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)


# --- composites -------------------------------------------------------------------------


def load_sources(data: Path, reference: FaceDetector) -> list[Source]:
    sources = []
    for path in sorted(data.glob("*/*.jpg")):
        rgb = decode_image(path.read_bytes())
        faces = reference.detect(rgb)
        if len(faces) == 1 and faces[0].box.height >= 64:
            sources.append(Source(f"{path.parent.name}/{path.name}", path.parent.name, rgb, faces[0].box))
    return sources


def face_patch(source: Source, height: int) -> tuple[np.ndarray, Box]:
    """The face with half a face of surroundings each side, scaled so the face is ``height`` px."""
    box = source.box
    ih, iw = source.rgb.shape[:2]
    x0, y0 = max(0, box.x - box.width // 2), max(0, box.y - box.height // 2)
    x1, y1 = min(iw, box.x + box.width * 3 // 2), min(ih, box.y + box.height * 3 // 2)
    scale = height / box.height
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    patch = cv2.resize(source.rgb[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    return patch, Box(
        round((box.x - x0) * scale), round((box.y - y0) * scale), round(box.width * scale), height
    )


def paste(canvas: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Paste with softened edges, so the patch's border is not a sharp rectangle."""
    h, w = patch.shape[:2]
    mask = np.zeros((h, w), np.float32)
    border = max(1, min(h, w) // 8)
    mask[border : h - border, border : w - border] = 1.0
    mask = cv2.blur(mask, (2 * border + 1, 2 * border + 1))[..., None]
    region = canvas[y : y + h, x : x + w]
    canvas[y : y + h, x : x + w] = (patch * mask + region * (1 - mask)).astype(np.uint8)


def scatter(canvas: np.ndarray, patches: list[tuple[np.ndarray, Box]], rng: np.random.Generator) -> list[Box]:
    """Paste patches at random places without overlap; the boxes of those that fitted."""
    taken: list[tuple[int, int, int, int]] = []
    truth = []
    ch, cw = canvas.shape[:2]
    for patch, box in patches:
        h, w = patch.shape[:2]
        if h >= ch or w >= cw:
            continue
        for _ in range(50):
            x, y = int(rng.integers(0, cw - w)), int(rng.integers(0, ch - h))
            if all(x + w <= tx or tx + tw <= x or y + h <= ty or ty + th <= y for tx, ty, tw, th in taken):
                taken.append((x, y, w, h))
                paste(canvas, patch, x, y)
                truth.append(box.moved(x, y))
                break
    return truth


def collage(sources: list[Source], columns: int, rows: int, width: int = 1280, height: int = 960):
    """Whole photos in a grid, each fitted into its cell; the faces' boxes."""
    canvas = np.full((height, width, 3), 235, np.uint8)
    cw, ch = width // columns, height // rows
    truth = []
    for i, source in enumerate(sources[: columns * rows]):
        sh, sw = source.rgb.shape[:2]
        scale = min(cw / sw, ch / sh) * 0.95
        photo = cv2.resize(
            source.rgb, (max(1, round(sw * scale)), max(1, round(sh * scale))), interpolation=cv2.INTER_AREA
        )
        x = (i % columns) * cw + (cw - photo.shape[1]) // 2
        y = (i // columns) * ch + (ch - photo.shape[0]) // 2
        canvas[y : y + photo.shape[0], x : x + photo.shape[1]] = photo
        truth.append(source.box.scaled(scale).moved(x, y))
    return canvas, truth


# --- sections ---------------------------------------------------------------------------


def section_recall(detect, sources, free, rng, per_cell: int) -> list[str]:
    lines = ["| face height | " + " | ".join(f"{w} × {h}" for w, h in CANVASES) + " | extra detections |"]
    lines.append("|---" * (len(CANVASES) + 2) + "|")
    for height in HEIGHTS:
        cells, extra = [], 0
        for width, canvas_h in CANVASES:
            tally = Tally()
            while tally.total < per_cell:
                canvas = background(width, canvas_h, rng, free)
                picks = rng.choice(len(sources), 6, replace=False)
                truth = scatter(canvas, [face_patch(sources[i], height) for i in picks], rng)
                hits, unmatched = matches(truth, detect(degrade(canvas, rng)))
                tally.add(sum(hits), len(hits), unmatched)
            cells.append(str(tally))
            extra += tally.extra
        lines.append(f"| {height} px | " + " | ".join(cells) + f" | {extra} |")
    return lines


def section_groups(detect, sources, free, rng, repeats: int) -> list[str]:
    lines = [
        "| composite | faces ≥ 40 px | faces < 40 px | all | extra detections |",
        "|---|---|---|---|---|",
    ]
    kinds: list[tuple[str, Callable[[], tuple[np.ndarray, list[Box]]]]] = []
    for columns, rows in COLLAGES:

        def make(columns=columns, rows=rows):
            picks = rng.choice(len(sources), columns * rows, replace=columns * rows > len(sources))
            return collage([sources[i] for i in picks], columns, rows)

        kinds.append((f"collage {columns} × {rows}", make))

    def crowd():
        canvas = background(1280, 960, rng, free)
        picks = rng.choice(len(sources), 20, replace=False)
        heights = np.exp(rng.uniform(np.log(16), np.log(128), 20)).round().astype(int)
        patches = sorted(
            (face_patch(sources[i], int(h)) for i, h in zip(picks, heights, strict=True)),
            key=lambda p: -p[1].height,
        )
        return canvas, scatter(canvas, patches, rng)

    kinds.append(("crowd, 16..128 px", crowd))
    for name, make in kinds:
        big, small, every = Tally(), Tally(), Tally()
        for _ in range(repeats):
            canvas, truth = make()
            hits, unmatched = matches(truth, detect(degrade(canvas, rng)))
            large = [hit for hit, box in zip(hits, truth, strict=True) if box.height >= 40]
            little = [hit for hit, box in zip(hits, truth, strict=True) if box.height < 40]
            big.add(sum(large), len(large))
            small.add(sum(little), len(little))
            every.add(sum(hits), len(hits), unmatched)
        lines.append(f"| {name} | {big} | {small} | {every} | {every.extra} |")
    return lines


def section_turned(detect, sources, rng) -> list[str]:
    lines = ["| change | found |", "|---|---|"]
    picks = [sources[i] for i in rng.choice(len(sources), min(60, len(sources)), replace=False)]
    for turns, name in ((1, "turned 90° (counter-clockwise)"), (2, "turned 180°"), (3, "turned 270°")):
        tally = Tally()
        for s in picks:
            tally.add(int(bool(detect(np.ascontiguousarray(np.rot90(s.rgb, turns))))), 1)
        lines.append(f"| {name} | {tally} |")
    for fraction, name in (
        (1 / 3, "a third of the face outside the frame"),
        (1 / 2, "half of the face outside"),
    ):
        tally = Tally()
        for s in picks:
            cut = s.box.x + round(s.box.width * fraction)
            rgb = np.ascontiguousarray(s.rgb[:, cut:])
            truth = Box(0, s.box.y, s.box.width - round(s.box.width * fraction), s.box.height)
            found = detect(rgb)
            tally.add(
                int(
                    any(
                        f.box.x < truth.width
                        and abs(f.box.y + f.box.height / 2 - truth.y - truth.height / 2) < truth.height / 2
                        for f in found
                    )
                ),
                1,
            )
        lines.append(f"| {name} | {tally} |")
    return lines


def section_free(detect, free) -> list[str]:
    found = [detect(im) for im in free]
    with_any = sum(bool(f) for f in found)
    total = sum(len(f) for f in found)
    top = max((d.score for f in found for d in f), default=None)
    scores = f"{top:.3f}" if top is not None else "-"
    return [
        "| face-free images | images with a detection | detections | highest score |",
        "|---|---|---|---|",
        f"| {len(free)} | {with_any} | {total} | {scores} |",
    ]


def section_time(detect, before, sources, free, rng, repeats: int, data: Path) -> list[str]:
    """Runs alternate with the reference detector's, so a busy machine slows both alike."""
    lines = [
        "| photo | detect p50, ms | faces found | baseline p50, ms | faces found | ratio |",
        "|---|---|---|---|---|---|",
    ]
    photos = {
        "typical one-face photo (330 × 413)": decode_image(
            (data / "elijah_wood/0c74cdc40321addb5d50a98e10887c37.jpg").read_bytes()
        )
    }
    for width, height in TIME_SIZES:
        canvas = background(width, height, rng, free)
        scatter(
            canvas,
            [face_patch(sources[i], height // 6) for i in rng.choice(len(sources), 3, replace=False)],
            rng,
        )
        photos[f"{width} × {height}, 3 faces"] = canvas
    for name, rgb in photos.items():
        times: dict[Callable, list[float]] = {detect: [], before: []}
        counts = {}
        for _ in range(repeats + 1):
            for run, spent in times.items():
                start = time.perf_counter()
                counts[run] = len(run(rgb))
                spent.append(time.perf_counter() - start)
        ours, theirs = (statistics.median(times[run][1:]) * 1000 for run in (detect, before))
        ratio = ours / theirs
        lines.append(
            f"| {name} | {ours:.1f} | {counts[detect]} | {theirs:.1f} | {counts[before]} | {ratio:.2f} |"
        )
    return lines


def section_accuracy(
    recognizer: Recognizer, reference: FaceDetector, data: Path, free, rng, thorough: bool
) -> list[str]:
    wanted = load_manifest(recognizer.version_dir).dataset["test_files"]
    photos = []
    for name in wanted:
        rgb = decode_image((data / name).read_bytes())
        faces = reference.detect(rgb)
        if faces:
            photos.append((name.split("/")[0], rgb, max(faces, key=lambda f: f.box.area).box))
    lines = [
        f"{len(photos)} held-out photos; the main face scaled to each height "
        "on a 640 × 480 face-free background, JPEG 90.",
        "",
        "| face height | right name | unknown | wrong name | not found | wrong names' median confidence |",
        "|---|---|---|---|---|---|",
    ]
    for height in ACCURACY_HEIGHTS:
        counts = {"right": 0, "unknown": 0, "wrong": 0, "missed": 0}
        wrong_conf = []
        for label, rgb, box in photos:
            scale = height / box.height
            small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            canvas = background(max(640, small.shape[1] + 2), max(480, small.shape[0] + 2), rng, free)
            x, y = (
                int(rng.integers(0, canvas.shape[1] - small.shape[1])),
                int(rng.integers(0, canvas.shape[0] - small.shape[0])),
            )
            canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
            truth = box.scaled(scale).moved(x, y)
            result = recognizer.recognize_rgb(jpeg_round_trip(canvas, 90), thorough=thorough)
            hits, _ = matches([truth], [Detection(f.box) for f in result.faces])
            if not hits[0]:
                counts["missed"] += 1
                continue
            face = next(f for f in result.faces if matches([truth], [Detection(f.box)])[0][0])
            if face.label == label:
                counts["right"] += 1
            elif face.label == UNKNOWN:
                counts["unknown"] += 1
            else:
                counts["wrong"] += 1
                wrong_conf.append(face.confidence)
        n = len(photos)
        conf = f"{statistics.median(wrong_conf):.2f}" if wrong_conf else "-"
        lines.append(
            f"| {height} px | "
            + " | ".join(f"{counts[k] / n:.1%}" for k in ("right", "unknown", "wrong", "missed"))
            + f" | {conf} |"
        )
    return lines


SECTIONS = ("recall", "groups", "turned", "free", "time")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--detector", default="blazeface", choices=DETECTORS.names, help="the one measured")
    parser.add_argument("--params", default="{}", help="the detector's settings as JSON, over its defaults")
    parser.add_argument(
        "--baseline",
        choices=("reference", "default"),
        default="reference",
        help="what the time section runs beside it: the search before issue 11, or the default blazeface",
    )
    parser.add_argument("--thorough", action="store_true", help="the slower search (?thorough=true)")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}, accuracy"
    )
    parser.add_argument("--faces", type=int, default=120, help="faces per cell of the recall table")
    parser.add_argument("--repeats", type=int, default=5, help="composites per group kind; timing runs")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--backend", default="svm", help="for the accuracy section")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--out", type=Path, help="append the tables to this file")
    return parser


def main() -> int:
    parser = build_parser()
    args = parser.parse_args()
    try:
        params = json.loads(args.params)
        detector = create_detector(args.detector, params)
    except (ValueError, TypeError) as exc:
        parser.exit(2, f"error: bad --params: {exc}\n")
    sections = args.sections.split(",")
    if unknown := set(sections) - {*SECTIONS, "accuracy"}:
        parser.exit(2, f"error: unknown section(s) {sorted(unknown)}\n")
    if not args.data.is_dir():
        parser.exit(2, f"error: no photo folder at {args.data}\n")

    reference = create_detector("blazeface", WHOLE_PHOTO_ONLY)
    sources = load_sources(args.data, reference)
    rng = np.random.default_rng(args.seed)
    free = face_free_images(FACE_FREE_COUNT, rng)

    def detect(rgb: np.ndarray) -> list[Detection]:
        return detector.detect(rgb, thorough=args.thorough)

    mode = "thorough" if args.thorough else "default"
    out = [
        f"### Detector {detector.name} {detector.params}, {mode} search; "
        f"{len(sources)} one-face source photos, seed {args.seed}",
        "",
    ]
    for name in sections:
        rng = np.random.default_rng([args.seed, SECTIONS.index(name) if name in SECTIONS else 99])
        start = time.perf_counter()
        if name == "recall":
            lines = section_recall(detect, sources, free, rng, args.faces)
        elif name == "groups":
            lines = section_groups(detect, sources, free, rng, args.repeats)
        elif name == "turned":
            lines = section_turned(detect, sources, rng)
        elif name == "free":
            lines = section_free(detect, free)
        elif name == "time":
            baseline = reference if args.baseline == "reference" else create_detector("blazeface")
            lines = section_time(detect, baseline.detect, sources, free, rng, args.repeats * 4, args.data)
        else:
            recognizer = Recognizer.from_artifact(resolve_version_dir(args.artifacts, args.backend))
            recognizer.detector = detector
            lines = section_accuracy(recognizer, reference, args.data, free, rng, args.thorough)
        out += [f"#### {name} ({time.perf_counter() - start:.0f} s)", "", *lines, ""]
        print("\n".join(out[-len(lines) - 3 :]), flush=True)
    if args.out:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
