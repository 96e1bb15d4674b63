"""The Ray engine on a real local Ray cluster: the local engine's answers, exactly once, resumable.

The cluster is ``ray.init`` with 2 CPUs (CI has 2 cores), so the actors, the read and
write tasks and the restarts are Ray's own, in their own processes. The photos are
made from the held-out shared photos (smaller, mirrored and cropped copies: a few
hundred distinct files) plus photos without a face, corrupt files and a stray note.
Every Ray run is compared with the local engine's rows for the same files.

Without Ray installed these tests skip; with CI=true they fail instead, so CI cannot
pass by not running them (``make test`` installs the ``ray`` extra).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.batch import command, local
from app.batch.options import RayOptions
from app.batch.rows import BatchInputError
from app.config import Settings
from tests.conftest import ARTIFACTS, LabelledPhoto
from tests.fresh_python import run_module
from tests.images import encode, no_face_image

if os.environ.get("CI") == "true":
    import ray
else:
    ray = pytest.importorskip("ray")

import pyarrow.csv as pacsv  # after the skip: pyarrow comes with the ray extra
import pyarrow.parquet as pq

from app.batch import ray_engine

pytestmark = pytest.mark.slow

#: The Ray actors' process title (``ray::`` + the actor class Ray Data wraps our class in).
ACTOR_TITLE = b"ray::MapWorker(MapBatches(PhotoClassifier))"
#: (scale, variant) of each held-out photo: distinct files, small enough to keep CI quick.
VARIANTS = [(0.3, "plain"), (0.3, "mirrored"), (0.3, "cropped"), (0.4, "plain"), (0.4, "mirrored")]


def settings(**overrides) -> Settings:
    return Settings(_env_file=None, artifacts_dir=ARTIFACTS, classifier_backend="svm", **overrides)


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """A real Ray cluster on this machine, with as many CPUs as CI has."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, held_out: list[LabelledPhoto]) -> Path:
    """About 200 files: 5 variants of each held-out photo, no-face images, corrupt files and a note."""
    root = tmp_path_factory.mktemp("ray") / "photos"
    for photo in held_out:
        folder = root / photo.label
        folder.mkdir(parents=True, exist_ok=True)
        for scale, variant in VARIANTS:
            small = cv2.resize(photo.rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            height, width = small.shape[:2]
            image = {
                "plain": small,
                "mirrored": small[:, ::-1],
                "cropped": small[height // 20 : height - height // 20, width // 20 : width - width // 20],
            }[variant]
            name = f"{photo.path.stem}-{int(scale * 100)}-{variant}.jpg"
            (folder / name).write_bytes(encode(np.ascontiguousarray(image), quality=90))
    other = root / "other"
    other.mkdir()
    for index in range(3):
        (other / f"shapes-{index}.png").write_bytes(encode(np.roll(no_face_image(), 40 * index, 1), "PNG"))
    whole = (root / held_out[0].label).glob("*.jpg").__next__().read_bytes()
    (other / "truncated.jpg").write_bytes(whole[: len(whole) // 3])
    (other / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not a photo\n")
    (root / ".DS_Store").write_bytes(b"\0")
    return root


@pytest.fixture(scope="module")
def local_rows(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The local engine's rows for the same files: what every Ray run must reproduce."""
    out = tmp_path_factory.mktemp("local") / "results.jsonl"
    summary = local.classify_folder(photos, out, settings())
    assert summary.errors == 2 and summary.no_face >= 3
    return [json.loads(line) for line in out.read_text().splitlines()]


def read_rows(dst: Path) -> list[dict]:
    """Every row of a Ray DST, whatever its format, as the JSONL dicts the local engine writes."""
    files = sorted(dst.glob("part-*"))
    assert files, f"no part files in {dst}"
    if dst.suffix == ".parquet":
        return [row for f in files for row in pq.read_table(f).to_pylist()]
    if dst.suffix == ".jsonl":
        return [json.loads(line) for f in files for line in f.read_text().splitlines()]
    rows = []
    for f in files:
        for line in pacsv.read_csv(f).to_pylist():
            face = line["status"] == "face"
            probabilities = {k.removeprefix("p_"): v for k, v in line.items() if k.startswith("p_")}
            rows.append(
                {
                    "path": line["path"],
                    "status": line["status"],
                    "face": line["face"],
                    "box": {k: line[f"box_{k}"] for k in ("x", "y", "width", "height")} if face else None,
                    "label": line["label"],
                    "confidence": line["confidence"],
                    "probabilities": probabilities if face else None,
                    "error": line["error"],
                    "size": line["size"],
                }
            )
    return rows


def by_photo(rows: list[dict]) -> dict[str, list[dict]]:
    photos: dict[str, list[dict]] = {}
    for row in rows:
        photos.setdefault(row["path"], []).append(row)
    return photos


def assert_same_as_local(ray_rows: list[dict], local_rows: list[dict], photos: Path) -> None:
    """Each photo exactly once, with its true size, and rows equal to the local engine's."""
    grouped = by_photo(ray_rows)
    for path, rows in grouped.items():
        faces = [r["face"] for r in rows]
        assert faces in ([None], list(range(len(rows)))), f"{path} is not there exactly once: {faces}"
        assert {r["size"] for r in rows} == {(photos / path).stat().st_size}
    key = lambda r: (r["path"], -1 if r["face"] is None else r["face"])  # noqa: E731
    stripped = [{k: v for k, v in r.items() if k != "size"} for r in ray_rows]
    assert sorted(stripped, key=key) == sorted(local_rows, key=key)


def our_actor_pids() -> list[int]:
    """PIDs of this test's classifier actors: by process title, descended from this process.

    Other Ray clusters may run on the machine; the ancestry check keeps us to ours.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
            pid = int(entry.name)
            ancestor = pid
            while ancestor > 1 and ancestor != os.getpid():
                ancestor = int(
                    (Path("/proc") / str(ancestor) / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
        if title.startswith(ACTOR_TITLE) and ancestor == os.getpid():
            pids.append(pid)
    return pids


def test_same_rows_as_the_local_engine_though_a_worker_is_killed(
    cluster: None, photos: Path, local_rows: list[dict], tmp_path: Path
) -> None:
    """SIGKILL one actor once part files have started to appear: Ray restarts it and retries its batch.

    The job still completes, every photo is in DST exactly once, and the rows are the
    local engine's rows for the same files.
    """
    dst = tmp_path / "results.parquet"
    total = len(by_photo(local_rows))
    killed: list[tuple[int, int]] = []  # (pid, part files when it was killed)

    def kill_one_actor_mid_run() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            parts = len(list(dst.glob("part-*"))) if dst.is_dir() else 0
            busy = our_actor_pids()
            if parts >= 2 and busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append((busy[0], parts))
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_actor_mid_run, daemon=True)
    killer.start()
    options = RayOptions(actors=2, batch_size=8)
    summary = ray_engine.classify_store(str(photos), str(dst), settings(), options)
    killer.join()
    assert killed, "no actor was killed"
    pid, parts_then = killed[0]
    assert parts_then * options.batch_size < total  # killed mid-run: most photos were still to come
    assert pid not in our_actor_pids()
    rows = read_rows(dst)
    assert_same_as_local(rows, local_rows, photos)
    assert (summary.photos, summary.classified, summary.already_done, summary.skipped) == (total, total, 0, 1)
    assert summary.counts == dict(Counter(r["status"] for r in rows))
    assert summary.part_files == len(list(dst.glob("part-*")))
    job = json.loads((dst / ray_engine.JOB_FILE).read_text())
    assert (job["backend"], job["format"]) == ("svm", "parquet")
    assert not list(dst.glob(".*"))  # the killed write's temporary file, if any, is gone


def test_a_rerun_classifies_only_what_is_missing(
    cluster: None, photos: Path, local_rows: list[dict], tmp_path: Path
) -> None:
    """First half the photos; then all of them into the same DST, after a crash left a temporary file."""
    src = tmp_path / "photos"
    people = sorted(p.name for p in photos.iterdir() if p.is_dir() and p.name != "other")[:2]
    files = [path for person in people for path in sorted((photos / person).glob("*-30-plain.jpg"))]
    first, later = files[: len(files) // 2], files[len(files) // 2 :]

    def copy(path: Path) -> None:
        (src / path.parent.name).mkdir(parents=True, exist_ok=True)
        (src / path.parent.name / path.name).write_bytes(path.read_bytes())

    for path in first:
        copy(path)
    dst = tmp_path / "results.csv"
    options = RayOptions(actors=1, batch_size=4)
    done = ray_engine.classify_store(str(src), str(dst), settings(), options)
    assert (done.classified, done.already_done) == (len(first), 0)

    crashed = dst / ".part-0123.csv.0123.tmp"  # what an actor killed mid-write leaves
    crashed.write_text("path,status\nhalf a ro")
    for path in later:
        copy(path)
    changed = src / first[0].parent.name / first[0].name
    changed.write_bytes(changed.read_bytes() + b"\0")  # same path, new size: done again
    again = ray_engine.classify_store(f"file://{src}", str(dst), settings(), options)
    assert (again.photos, again.already_done, again.classified) == (
        len(files),
        len(first) - 1,
        len(later) + 1,
    )
    assert not crashed.exists()

    rows = read_rows(dst)
    changed_path = changed.relative_to(src).as_posix()
    current = [r for r in rows if not (r["path"] == changed_path and r["size"] != changed.stat().st_size)]
    expected = [
        r for r in local_rows if r["path"].split("/")[0] in people and r["path"].endswith("-30-plain.jpg")
    ]
    assert_same_as_local(current, expected, src)


def test_a_destination_written_by_another_model_is_refused(photos: Path, tmp_path: Path) -> None:
    """No cluster needed: the check happens before any photo is read."""
    dst = tmp_path / "results.parquet"
    dst.mkdir()
    job = ray_engine.job_description(settings(), "parquet")
    (dst / ray_engine.JOB_FILE).write_text(json.dumps({**job, "version": "20200101-000000"}))
    with pytest.raises(BatchInputError, match="version differ"):
        ray_engine.classify_store(str(photos), str(dst), settings(), RayOptions())
    assert command.main(photos, dst, settings(), "ray") == 2


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARTIFACTS_DIR": str(ARTIFACTS), "CLASSIFIER_BACKEND": "svm", **(env or {})}
    return run_module("app", "classify", *args, timeout=300, env=env)


def test_cli_joins_a_running_cluster(
    cluster: None, photos: Path, local_rows: list[dict], tmp_path: Path
) -> None:
    """The real command, as a second driver on the test's cluster; then bad arguments exit 2."""
    src = tmp_path / "few"
    (src / "other").mkdir(parents=True)
    for path in sorted((photos / "other").iterdir()):
        (src / "other" / path.name).write_bytes(path.read_bytes())
    dst = tmp_path / "few.jsonl"
    address = ray.get_runtime_context().gcs_address
    done = run_cli(str(src), "--out", str(dst), "--engine", "ray", "--ray-address", address, "--actors", "1")
    assert done.returncode == 0, done.stderr
    assert "classified 5 photos: 0 faces, 3 photos without a face, 2 unreadable" in done.stdout
    expected = [r for r in local_rows if r["path"].startswith("other/")]
    assert_same_as_local(read_rows(dst), expected, src)

    for args, message in [
        ((str(src), "--out", str(tmp_path / "r.xlsx"), "--engine", "ray"), "--out must end in .parquet"),
        (("s3://bucket/photos", "--out", str(tmp_path / "r.jsonl")), "use --engine ray"),
        ((str(src), "--out", str(dst), "--engine", "ray", "--actors", "0"), "--actors: 0 is not at least 1"),
    ]:
        refused = run_cli(*args)
        assert refused.returncode == 2, refused.stderr
        assert message in refused.stderr and "Traceback" not in refused.stderr


def test_an_address_where_no_cluster_answers_is_one_line(photos: Path, tmp_path: Path) -> None:
    """ray.init would retry for many minutes; the command says what is wrong at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket closes
    args = (str(photos / "other"), "--out", str(tmp_path / "r.jsonl"), "--engine", "ray")
    done = run_cli(*args, "--ray-address", address)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: no Ray cluster answers at {address}: Connection refused"


def test_uris_name_their_filesystem(tmp_path: Path) -> None:
    """A local path, a pyarrow URI and an fsspec-only URI each resolve to a filesystem that lists files."""
    (tmp_path / "a.jpg").write_bytes(b"x")
    on_disk = ray_engine.open_store(str(tmp_path))
    by_uri = ray_engine.open_store(f"file://{tmp_path}")
    assert on_disk.path == by_uri.path == tmp_path.as_posix()
    memory = ray_engine.open_store("memory://bucket/photos")
    memory.fs.create_dir(memory.path)
    with memory.fs.open_output_stream(memory.join("a.jpg")) as stream:
        stream.write(b"xyz")
    assert ray_engine.list_photos(memory) == ({"a.jpg": 3}, 0)
    with pytest.raises(BatchInputError, match="no filesystem"):
        ray_engine.open_store("nosuchscheme://bucket/photos")


def test_batches_shrink_towards_the_end_so_actors_finish_together() -> None:
    """Every photo in exactly one batch, none over the most, full batches first and a short tail."""
    for photos, actors, most, least in [
        (500, 2, 16, 1),
        (500, 1, 16, 2),
        (37, 4, 8, 1),
        (3, 2, 16, 2),
        (1, 1, 16, 1),
    ]:
        sizes = ray_engine.batch_sizes(photos, actors, most, least)
        assert sum(sizes) == photos
        assert all(1 <= size <= most for size in sizes)
        assert sizes == sorted(sizes, reverse=True)
        assert all(size >= least for size in sizes[:-1])
    sizes = ray_engine.batch_sizes(500, 2, 16)
    assert sizes[:25] == [16] * 25 and sizes[-1] == 1 and len(sizes) < 500 / 16 + 2 * 2 * 4
