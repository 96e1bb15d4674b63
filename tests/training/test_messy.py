"""Messy folders: every file is used, skipped with a warning naming it and why, or refused in one line."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from app.artifact.manifest import load_manifest
from app.model.recognizer import Recognizer
from tests.images import encode, no_face_image
from tests.training.conftest import copy_photos

pytestmark = pytest.mark.slow


def convert(source: Path, target: Path, fmt: str) -> None:
    buffer = io.BytesIO()
    Image.open(source).convert("RGB").save(buffer, format=fmt)
    target.write_bytes(buffer.getvalue())


@pytest.fixture
def messy(tmp_path: Path, shared_photos: dict[str, list[Path]]) -> tuple[Path, dict[str, str]]:
    """A folder with every kind of mess, and the reason each messy file must be skipped for."""
    root = tmp_path / "photos"
    billy = shared_photos["billy_boyd"]
    person = root / "billy_boyd"
    (person / "2019" / "trip").mkdir(parents=True)
    shutil.copy(billy[0], person / "Photo 1.JPG")
    shutil.copy(billy[1], person / "photo 2.jfif")
    convert(billy[2], person / "ñandú 3.webp", "WEBP")
    convert(billy[3], person / "shot 4.PNG", "PNG")
    shutil.copy(billy[4], person / "2019" / "trip" / "deep 5.Jpeg")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(billy[5], outside / "linked target.jpg")
    (person / "linked.jpg").symlink_to(outside / "linked target.jpg")
    (person / "broken.jpg").symlink_to(tmp_path / "gone.jpg")
    (person / "loop").symlink_to(person, target_is_directory=True)
    shutil.copy(billy[0], person / "copy of Photo 1.jpg")
    (person / "truncated.jpg").write_bytes(billy[6].read_bytes()[:4000])
    (person / "empty.png").write_bytes(b"")
    (person / "notes.txt").write_text("not a photo")
    (person / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (person / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    copy_photos(root, {"sean_astin": shared_photos["sean_astin"][:3]})
    jose = root / "José Núñez"
    jose.mkdir()
    for i, photo in enumerate(shared_photos["elijah_wood"][:3]):
        shutil.copy(photo, jose / f"été {i}.jpg")
    (root / "empty_person").mkdir()
    faceless = root / "no_face_person"
    faceless.mkdir()
    (faceless / "gradient.png").write_bytes(encode(no_face_image(), "PNG"))
    (faceless / "shapes.jpg").write_bytes(encode(no_face_image(800, 600)))
    (root / "README.md").write_text("stray")
    (root / ".DS_Store").write_bytes(b"\0")
    shutil.copy(billy[7], root / "loose.jpg")
    reasons = {
        "broken.jpg": "broken symbolic link",
        "loop": "folder already read",
        "copy of Photo 1.jpg": "same bytes as billy_boyd/Photo 1.JPG",
        "truncated.jpg": "unreadable: the image data is corrupt or truncated",
        "empty.png": "unreadable: empty file",
        "notes.txt": "not a photo type training reads (.txt)",
        ".DS_Store": "hidden or system file",
        "Thumbs.db": "hidden or system file",
        "empty_person": "no photos in this person folder; person left out",
        "gradient.png": "no face found",
        "shapes.jpg": "no face found",
        "no_face_person": "no usable face in any of its photos; person left out",
        "README.md": "not inside a person folder",
        "loose.jpg": "not inside a person folder",
    }
    return root, reasons


def test_messy_folder_trains_and_names_every_skipped_file(messy, run_cli, tmp_path, caplog) -> None:
    root, reasons = messy
    code, err = run_cli(root)
    assert code == 0, err
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for name, reason in reasons.items():
        assert any(name in w and reason in w for w in warnings), (name, reason, warnings)
    version_dir = tmp_path / "artifacts" / "svm" / "v1"
    manifest = load_manifest(version_dir)
    assert manifest.class_ids == ["José Núñez", "billy_boyd", "sean_astin"]
    # 6 of billy's (nested, symlinked, jfif, webp, upper-case png and JPG), 3 of José's, 3 of sean's.
    assert manifest.dataset["photos"] == 12
    assert manifest.metrics["evaluation"]["method"] == "leave_one_photo_out"
    assert manifest.metrics["leave_one_photo_out"]["test_photos"] == 12
    assert manifest.metrics["unknown_threshold"]["source"] == "default"
    report = (version_dir / "report.md").read_text(encoding="utf-8")
    assert "Leave-one-photo-out on the training photos (not a held-out figure)" in report
    assert "truncated.jpg" in report

    recognizer = Recognizer.from_artifact(version_dir)
    face = recognizer.recognize_bytes((root / "José Núñez" / "été 0.jpg").read_bytes()).faces
    assert max(face, key=lambda f: f.box.area).label == "José Núñez"


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "does not exist or is not a folder"),
        ("empty", "no photos in person folders"),
        ("loose", "the 2 photos directly in it need a folder per person"),
        ("no_faces", "no face found in any photo"),
        ("only_junk", "no photos in person folders"),
    ],
)
def test_folders_that_cannot_train_are_refused_in_one_line(
    case, message, tmp_path, shared_photos, run_cli
) -> None:
    root = tmp_path / case
    if case != "missing":
        root.mkdir()
    if case == "loose":
        for photo in shared_photos["sean_astin"][:2]:
            shutil.copy(photo, root / photo.name)
    if case == "no_faces":
        (root / "somebody").mkdir()
        (root / "somebody" / "a.png").write_bytes(encode(no_face_image(), "PNG"))
    if case == "only_junk":
        (root / "somebody").mkdir()
        (root / "somebody" / "notes.txt").write_text("x")
        (root / "somebody" / ".DS_Store").write_bytes(b"\0")
    code, err = run_cli(root)
    assert code == 2
    assert message in one_line_error(err)


def test_cli_process_exits_2_without_a_traceback(tmp_path) -> None:
    """The real command, as a user runs it, on a folder with nothing but a broken photo."""
    (tmp_path / "someone").mkdir()
    (tmp_path / "someone" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "train",
            "--data",
            str(tmp_path),
            "--artifacts",
            str(tmp_path / "a"),
            "--no-cache",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TQDM_DISABLE": "1"},
        check=False,
    )
    assert result.returncode == 2
    assert "broken.jpg: unreadable" in result.stderr  # the warning names the file and the reason
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"error: no face found in any photo under {tmp_path}"
    assert "Traceback" not in result.stderr
