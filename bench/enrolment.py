"""Issue 13's targets for enrolment, measured against a real trainer and a real classify service.

Run by hand (not in CI):

    .venv/bin/python bench/enrolment.py       # everything, in a fresh temporary folder
    .venv/bin/python bench/enrolment.py --workdir /tmp/enrol --skip-import  # reuse a store

(It starts the services and kills the trainer with the helpers the tests use too:
harness/processes.py and harness/trainer.py.)

1. setup: the 199 shared photos enrolled into an empty store with
   ``python -m enrolment import`` (5 people: the default model's people), timed;
2. latency: a sixth person with 5 photos, from ``POST /v1/people`` to the classify service
   (its own uvicorn process, following LATEST every ``MODEL_WATCH_INTERVAL_S`` = 1 s)
   answering ``/v1/classify`` with the new version; ``--trials`` times, the person erased
   between trials. There is no sixth actor in the shared photos: the new person's photos are
   5 of sean_astin's, mirrored and re-encoded at a quality that differs per trial, so every
   trial uploads bytes the cache has never seen (as bench/retrain.py does);
3. concurrency: 20 people enrolled at once (20 threads, each ``POST /v1/people`` then 2
   photos), then the final version's classes are counted;
4. kill -9: ten times, a fresh trainer process gets a new person's 3 photos and is SIGKILLed
   a random 0.2-4 s into the request; after each kill the published versions are verified
   (``LATEST`` loads, every visible version matches its manifest) and the store's rows
   against its files; at the end a restarted trainer recovers and builds what was pending.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image, ImageOps

from app.artifact.manifest import load_manifest
from app.pipeline.numerics import cpu_summary
from enrolment.builder import build_version
from enrolment.service import Enrolment
from enrolment.settings import EnrolmentSettings
from enrolment.store import Store
from enrolment.versions import check_published
from harness.processes import running_server
from harness.trainer import kill_mid_change, trainer_env, wait_built

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hobbits"
KEY = "bench-key"
QUERY = DATA / "elijah_wood" / "0c74cdc40321addb5d50a98e10887c37.jpg"


def new_photos(person: str, count: int, variant: int) -> list[tuple[str, bytes]]:
    """``count`` of ``person``'s photos mirrored and re-encoded: bytes no cache has seen."""
    sources = sorted(p for p in (DATA / person).iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    photos = []
    for source in sources[:count]:
        image = ImageOps.mirror(ImageOps.exif_transpose(Image.open(source)).convert("RGB"))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=95 - variant % 40, comment=f"variant {variant}".encode())
        photos.append((f"{source.stem}-v{variant}.jpg", buffer.getvalue()))
    return photos


def upload(photos: list[tuple[str, bytes]]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "image/jpeg")) for name, data in photos]


def setup(settings: EnrolmentSettings) -> None:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "enrolment", "import", str(DATA)],
        env=os.environ | trainer_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    print(f"import of the shared photos: {time.perf_counter() - start:.1f} s: {done.stdout.strip()}")


def fit_times(settings: EnrolmentSettings, repeats: int) -> None:
    """What one build of the store costs, by ENROL_SEARCH: reading the cache, fitting, publishing."""
    service = Enrolment(settings)
    try:
        for search in ("svm", "full"):
            chosen = settings.model_copy(update={"search": search})
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                version = build_version(service.store.snapshot(), service.store, service.intake, chosen)
                times.append(time.perf_counter() - start)
                manifest = load_manifest(settings.artifacts_dir / settings.backend / version)
                winner = manifest.classifier["winner"]
            print(
                f"build of the whole store, ENROL_SEARCH={search}: median {statistics.median(times):.2f} s "
                f"(min {min(times):.2f}, n={repeats}), winner {winner}"
            )
    finally:
        service.close()


#: Where a build's time goes: (label, file suffix, function name) as cProfile names them.
BUILD_PARTS = (
    ("reading the cache", "training/faces.py", "embed_photos"),
    ("cross-validated search", "sklearn/model_selection/_search.py", "fit"),
    ("sigmoid calibration", "sklearn/calibration.py", "fit"),
    ("unknown threshold", "training/unknown.py", "choose_threshold"),
    ("open-set plot", "training/unknown.py", "plot_open_set"),
    ("model file (skops)", "app/backends/svm.py", "save"),
    ("report", "training/report.py", "write_report"),
    ("fsync and rename", "enrolment/durable.py", "move_into_place"),
)


def profile_build(settings: EnrolmentSettings) -> None:
    """One warm build of the store under cProfile: the cumulative time of each part."""
    service = Enrolment(settings)
    try:
        build_version(service.store.snapshot(), service.store, service.intake, settings)  # warm
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(build_version, service.store.snapshot(), service.store, service.intake, settings)
        total = time.perf_counter() - start
    finally:
        service.close()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    parts = []
    for label, suffix, name in BUILD_PARTS:
        # The outermost match: sklearn's calibration module has a fit inside the fit.
        found = [v[3] for (file, _, func), v in stats.items() if file.endswith(suffix) and func == name]
        seconds = max(found, default=0.0)  # 0: not called (enrolment builds draw no plot)
        parts.append(f"{label} {seconds:.2f} s")
    print(f"one warm build, ENROL_SEARCH={settings.search}, profiled: {total:.2f} s; " + ", ".join(parts))


def latency(trainer: httpx.Client, classify: str, trials: int) -> None:
    times, requests = [], []
    for trial in range(trials):
        person = f"newcomer-{trial}"
        photos = new_photos("sean_astin", 5, trial)
        start = time.perf_counter()
        assert trainer.post("/v1/people", data={"id": person, "name": "New Person"}).status_code == 201
        response = trainer.post(f"/v1/people/{person}/photos", files=upload(photos))
        assert response.status_code == 200, response.text
        version = response.json()["build"]["version"]
        requests.append(time.perf_counter() - start)
        while httpx.get(f"{classify}/v1/models", timeout=30).json()["version"] != version:
            time.sleep(0.05)
        answer = httpx.post(f"{classify}/v1/classify", files={"file": QUERY.open("rb")}, timeout=30).json()
        assert answer["model"]["version"] == version
        times.append(time.perf_counter() - start)
        print(f"  trial {trial}: {version}: response {requests[-1]:.2f} s, answering {times[-1]:.2f} s")
        assert trainer.delete(f"/v1/people/{person}").status_code == 200
    print(
        f"sixth person, 5 photos, request -> classify answers with the new version: p50 "
        f"{statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, n={trials}); "
        f"the enrolment requests alone (intake + build + publish): p50 {statistics.median(requests):.2f} s"
    )


def builds_logged(log: Path) -> int:
    return log.read_text().count('"message": "published ')


def concurrency(trainer: httpx.Client, settings: EnrolmentSettings, log: Path) -> None:
    people = [f"crowd-{n:02d}" for n in range(20)]
    hobbits = sorted(p.name for p in DATA.iterdir() if p.is_dir())

    def enrol(n: int) -> list[int]:
        person = people[n]
        first = trainer.post("/v1/people", data={"id": person, "name": person})
        photos = new_photos(hobbits[n % len(hobbits)], 2, 100 + n)
        second = trainer.post(f"/v1/people/{person}/photos", files=upload(photos))
        return [first.status_code, second.status_code]

    start, builds = time.perf_counter(), builds_logged(log)
    with ThreadPoolExecutor(len(people)) as pool:
        statuses = [s for pair in pool.map(enrol, range(len(people))) for s in pair]
    elapsed, builds = time.perf_counter() - start, builds_logged(log) - builds
    version = trainer.get("/v1/people").json()["version"]
    classes = load_manifest(settings.artifacts_dir / settings.backend / version).class_ids
    errors = sum(s >= 400 for s in statuses)
    present = sum(p in classes for p in people)
    print(
        f"20 concurrent enrolments: {present}/20 people in the final version {version}, {errors} errors "
        f"(statuses {sorted(set(statuses))}), {elapsed:.1f} s, {builds} builds"
    )


def kills(settings: EnrolmentSettings, workdir: Path, rounds: int, classify: str) -> None:
    rng = random.Random(13)
    hobbits = sorted(p.name for p in DATA.iterdir() if p.is_dir())
    stamp = time.strftime("%H%M%S")
    bad = 0
    for n in range(rounds):
        photos = new_photos(hobbits[n % len(hobbits)], 3, 200 + n)
        delay = rng.uniform(0.2, 4.0)
        person = f"killed-{stamp}-{n}"  # a new person each round, also when the store is reused
        outcome = kill_mid_change(settings, person, photos, delay, workdir / f"kill-{n}.log")
        time.sleep(1.5)  # a watcher interval and a load: the classify service follows LATEST
        answer = httpx.post(f"{classify}/v1/classify", files={"file": QUERY.open("rb")}, timeout=30)
        latest = (settings.artifacts_dir / settings.backend / "LATEST").read_text().strip()
        served = answer.json()["model"]["version"] if answer.status_code == 200 else answer.status_code
        bad += bool(outcome.problems) or served != latest
        stage = "published" if outcome.published else "committed" if outcome.committed else "not committed"
        print(
            f"  kill {n}: {delay:.2f} s in, change {stage}; problems: {outcome.problems or 'none'}; "
            f"classify answered {answer.status_code} from {served} (LATEST {latest})"
        )
    env = trainer_env(settings)
    with running_server(workdir / "recover.log", "enrolment", env=env) as base:
        build = wait_built(base, settings)
    store = Store(settings.store_dir, settings.max_people)
    after = check_published(settings) + store.check() + [str(p) for p in store.leftovers()]
    print(
        f"kill -9 x{rounds}: {rounds - bad}/{rounds} left a complete LATEST that the classify service "
        f"answered from, only verified versions and a consistent store; after the restart: build "
        f"{build['status']} {build.get('version')}, problems and leftovers: {after or 'none'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, help="store and artifacts here (default: a temporary folder)")
    parser.add_argument("--skip-import", action="store_true", help="the workdir's store is already set up")
    parser.add_argument("--profile", action="store_true", help="profile one warm build of the store")
    parser.add_argument("--fits", type=int, default=3, help="builds timed per search (default 3; 0 skips)")
    parser.add_argument("--trials", type=int, default=7, help="sixth-person trials (default 7; 0 skips)")
    parser.add_argument("--crowd", action=argparse.BooleanOptionalAction, default=True, help="20 at once")
    parser.add_argument("--kills", type=int, default=10, help="kill -9 rounds (default 10; 0 skips)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-enrolment-"))
    settings = EnrolmentSettings(
        _env_file=None, store_dir=workdir / "store", artifacts_dir=workdir / "artifacts", api_key=KEY
    )
    print(f"workdir {workdir}; CPU {cpu_summary()}")
    if not args.skip_import:
        setup(settings)
    if args.profile:
        profile_build(settings)
    if args.fits:
        fit_times(settings, args.fits)
    env = trainer_env(settings)
    classify_env = {"ARTIFACTS_DIR": str(settings.artifacts_dir), "MODEL_WATCH_INTERVAL_S": "1"}
    with running_server(workdir / "classify.log", env=classify_env) as classify_url:
        with (
            running_server(workdir / "trainer.log", "enrolment", env=env) as trainer_url,
            httpx.Client(base_url=trainer_url, headers={"X-API-Key": KEY}, timeout=600) as trainer,
        ):
            if args.trials:
                latency(trainer, classify_url, args.trials)
            if args.crowd:
                concurrency(trainer, settings, workdir / "trainer.log")
        if args.kills:
            kills(settings, workdir, args.kills, classify_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
