"""What the enrolment routes and the import command do, over the store, the intake and the builder.

Photos are analysed on a small pool of threads (as many as the detector may run at
once), so a burst of uploads queues rather than oversubscribing the CPUs; changes
commit to the store, wake the builder, and wait up to ``wait_s`` for their version.
"""

from __future__ import annotations

import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from app.labelled.folders import CLASSES_FILE, IMAGE_SUFFIXES, SYSTEM_NAMES, scan
from app.pipeline.decode import decode_photo
from app.pipeline.errors import ImageError
from enrolment.adoption import adopt
from enrolment.builder import Builder, BuildResult
from enrolment.examples import stale_reason
from enrolment.intake import Checked, Intake, Outcome
from enrolment.records import (
    CorrectionRequest,
    NegativeRecord,
    Person,
    PhotoRecord,
    StoreError,
    check_person_id,
)
from enrolment.settings import EnrolmentSettings
from enrolment.store import Store
from enrolment.versions import reconcile, seed
from training.run_config import DEFAULT_DETECTOR, DEFAULT_FEATURES

#: Photos analysed at once: the detector and embedder use both cores of a small machine.
INTAKE_THREADS = 2


@dataclass(frozen=True)
class Enrolled:
    """One file's outcome: who it was for, what intake said, and the stored photo if any."""

    person_id: str | None
    checked: Checked
    stored: PhotoRecord | None

    @property
    def outcome(self) -> Outcome:
        """Intake's outcome, or ``duplicate`` for a usable photo the person already had."""
        return "duplicate" if self.checked.photo is not None and self.stored is None else self.checked.outcome


@dataclass(frozen=True)
class Change:
    """The revision a change made (None: nothing changed) and its build, if it finished in time."""

    revision: int | None
    build: BuildResult | None


class Enrolment:
    """The trainer's state: the store (recovered at start), the intake stages, the builder."""

    def __init__(self, settings: EnrolmentSettings) -> None:
        self.settings = settings
        self.store = Store(settings.store_dir, settings.max_people)
        self.store.recover()
        reconcile(self.store, settings)
        seed(settings)
        adopt(self.store, settings)
        self.intake = Intake(
            DEFAULT_DETECTOR,
            DEFAULT_FEATURES,
            self.store.cache_dir,
            INTAKE_THREADS,
            settings.max_pixels,
            settings.max_photo_bytes,
        )
        self.builder = Builder(self.store, self.intake, settings)
        self._pool = ThreadPoolExecutor(INTAKE_THREADS, thread_name_prefix="intake")

    def start(self) -> None:
        self.builder.start()

    def close(self) -> None:
        self.builder.stop()
        self._pool.shutdown(cancel_futures=True)

    def built(self, revision: int, wait: bool = True) -> BuildResult | None:
        """Wake the builder; the build covering ``revision`` if it is done within ``wait_s``."""
        self.builder.request()
        return self.builder.wait(revision, self.settings.wait_s if wait else 0)

    def check_count(self, count: int) -> None:
        if count > self.settings.max_photos_per_request:
            raise StoreError(
                413, f"{count} photos in one request; the limit is {self.settings.max_photos_per_request}"
            )

    def check_picture(self, data: bytes) -> None:
        """A display picture must be a photo the service can read; it is not analysed or cached."""
        if len(data) > self.settings.max_photo_bytes:
            raise StoreError(413, f"picture: over the {self.settings.max_photo_bytes} byte limit per photo")
        try:
            decode_photo(data, self.settings.max_pixels)
        except ImageError as exc:
            raise StoreError(415, f"picture: {exc}") from exc

    def blocked(self, people: list[Person]) -> str | None:
        """Why the next build of these people would be refused (adopted embeddings other stages made)."""
        return stale_reason(people, self.intake)

    def correct(
        self, filename: str, data: bytes, request: CorrectionRequest
    ) -> tuple[PhotoRecord | NegativeRecord, bool, int]:
        """Store a verdict about one face of a photo: a photo of the person ("is"), or a face that
        is not them ("is_not"). Returns what was stored, whether the person was created for it
        ("is" with a ``name``, for someone new), and the revision."""
        person_id = check_person_id(request.person_id)
        new = not self.store.people(person_id)
        if new and (request.verdict == "is_not" or request.name is None):  # 404 before any work
            hint = "; give a name to enrol them from this face" if request.verdict == "is" else ""
            raise StoreError(404, f"no person {person_id!r}{hint}")
        photo = self.intake.locate(filename, data, request.box, request.answered, request.model_version)
        if new and request.name is not None:
            self.store.ensure_person(person_id, request.name)
        if request.verdict == "is_not":
            negative, revision = self.store.add_negative(person_id, photo)
            return negative, new, revision
        (stored,), revision = self.store.add_photos(person_id, [photo])
        if stored is None:
            raise StoreError(409, f"this photo is already one of {person_id!r}'s photos")
        return stored, new, revision

    def add_photos(self, person_id: str, files: list[tuple[str, bytes]]) -> tuple[list[Enrolled], Change]:
        """Analyse and store photos of one existing person (several per request)."""
        self.check_count(len(files))
        self.store.person(person_id)  # 404 before any work
        return self.enrol([(person_id, name, data) for name, data in files], {})

    def enrol(
        self, files: list[tuple[str, str, bytes]], names: dict[str, str], wait: bool = True
    ) -> tuple[list[Enrolled], Change]:
        """Analyse ``(person id, file name, bytes)`` files and store the usable ones, person by person.

        People missing from the store are created (bulk enrolment), named from ``names``; a person
        the store refuses (it is full) has their files ``skipped`` with the reason, the rest go on.
        """
        checked = list(self._pool.map(self._check, files))
        by_person: dict[str, list[int]] = {}
        for index, ((person_id, _, _), result) in enumerate(zip(files, checked, strict=True)):
            if result.photo is not None:
                by_person.setdefault(person_id, []).append(index)
        stored: dict[int, PhotoRecord | None] = {}
        revision = None
        for person_id, indexes in by_person.items():
            try:
                self.store.ensure_person(person_id, names.get(person_id) or _display_name(person_id))
            except StoreError as exc:
                for i in indexes:
                    checked[i] = Checked(checked[i].filename, "skipped", checked[i].faces, exc.detail)
                continue
            records, revision = self.store.add_photos(
                person_id, [photo for i in indexes if (photo := checked[i].photo) is not None]
            )
            stored |= dict(zip(indexes, records, strict=True))
        results = [
            Enrolled(f[0], c, stored.get(i)) for i, (f, c) in enumerate(zip(files, checked, strict=True))
        ]
        if revision is None or not any(stored.values()):
            return results, Change(None, None)
        return results, Change(revision, self.built(revision, wait))

    def _check(self, file: tuple[str, str, bytes]) -> Checked:
        person_id, filename, data = file
        try:
            check_person_id(person_id)
        except StoreError as exc:
            return Checked(filename, "skipped", detail=exc.detail)
        return self.intake.check(filename, data)

    def enrol_zip(self, data: bytes) -> tuple[list[Enrolled], Change]:
        """Bulk enrolment from a zip of ``<person id>/<photo>`` (an optional top folder and classes.json)."""
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise StoreError(400, f"not a zip file: {exc}") from exc
        with archive:
            members, skipped, names = self._zip_members(archive)
            files = [(person, path.name, archive.read(info)) for person, path, info in members]
        results, change = self.enrol(files, names)
        return skipped + results, change

    def _zip_members(
        self, archive: zipfile.ZipFile
    ) -> tuple[list[tuple[str, PurePosixPath, zipfile.ZipInfo]], list[Enrolled], dict[str, str]]:
        """The photos to read (checked against the limits before a byte is inflated), and the skips."""
        infos = [i for i in archive.infolist() if not i.is_dir()]
        paths = [PurePosixPath(i.filename) for i in infos]
        # A zip of one folder that holds the person folders: look inside it.
        photos = [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES and not _hidden(p)]
        tops = {p.parts[0] for p in photos}
        strip = 1 if len(tops) == 1 and all(len(p.parts) >= 3 for p in photos) else 0
        members, skipped, names = [], [], {}
        for info, path in zip(infos, paths, strict=True):
            parts = path.parts[strip:]
            if len(parts) == 1 and parts[0] == CLASSES_FILE:
                names = _names_from(archive.read(info))
                continue
            why = self._unusable(parts, path, info)
            if why is not None:
                skipped.append(Enrolled(None, Checked(str(path), "skipped", detail=why), None))
            else:
                members.append((parts[0], path, info))
        self.check_count(len(members))
        total = sum(info.file_size for _, _, info in members)
        if total > self.settings.max_request_bytes:
            raise StoreError(
                413,
                f"the zip's photos inflate to {total} bytes; the limit is {self.settings.max_request_bytes}",
            )
        return members, skipped, names

    def _unusable(self, parts: tuple[str, ...], path: PurePosixPath, info: zipfile.ZipInfo) -> str | None:
        if _hidden(path):
            return "hidden or system file"
        if len(parts) < 2:
            return "not inside a person folder"
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            return f"not a photo type enrolment reads ({path.suffix or 'no extension'})"
        if info.file_size > self.settings.max_photo_bytes:
            return f"over the {self.settings.max_photo_bytes} byte limit per photo"
        return None


def _hidden(path: PurePosixPath) -> bool:
    return any(part.startswith(".") or part.lower() in SYSTEM_NAMES for part in path.parts)


def _display_name(person_id: str) -> str:
    return person_id.replace("_", " ").title()


def _names_from(data: bytes) -> dict[str, str]:
    """Display names from a classes.json (as training reads it); anything malformed is ignored."""
    try:
        entries = json.loads(data)
    except ValueError:
        return {}
    if not isinstance(entries, dict):
        return {}
    return {
        k: v["name"] for k, v in entries.items() if isinstance(v, dict) and isinstance(v.get("name"), str)
    }


def folder_files(root: Path) -> tuple[list[tuple[str, str, bytes]], dict[str, str]]:
    """Every photo of ``root/<person>/`` as ``(person id, file name, bytes)``, and display names.

    The folder is read as the training CLI reads it (``app.labelled.folders.scan``: classes.json,
    sub-folders, skipped files logged), for the import command.
    """
    dataset = scan(root)
    files = [(p.label, p.path.name, p.path.read_bytes()) for p in dataset.photos]
    return files, {c.id: c.name for c in dataset.classes}
