"""Who is enrolled: people and photos in SQLite, photo files beside it, embeddings in the cache.

Layout of the store folder::

    people.sqlite3          people, photos, the revision counter, published versions, erasures
    photos/<photo id>       each enrolled photo's bytes, as uploaded
    pictures/<file id>      a person's optional display picture
    cache/                  the training embedding cache (training/cache.py), for these photos only

Every change to what a model would learn is one SQLite transaction that also bumps
``revision``; the builder publishes a version per revision it sees (several pending
ones at once). Files are written durably *before* the transaction that refers to them
commits, and removed *after* the one that forgets them, so a ``kill -9`` can only leave
files nothing refers to: ``recover`` deletes those at start-up. ``secure_delete`` makes
SQLite overwrite deleted rows, so an erased person's name is not left in free pages.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from enrolment import durable
from training.cache import EmbeddingCache

DATABASE = "people.sqlite3"
#: A person id becomes a class id, a file name and a URL segment; "unknown" is the open-set label.
PERSON_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
RESERVED_IDS = frozenset({"unknown"})

SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    character TEXT,
    picture TEXT,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS photos (
    id TEXT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    filename TEXT NOT NULL,
    faces INTEGER NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (person_id, sha256)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('revision', 0);
CREATE TABLE IF NOT EXISTS versions (
    version TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS erasures (person_id TEXT NOT NULL, revision INTEGER NOT NULL);
"""


class StoreError(Exception):
    """A change the store refuses; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class PhotoRecord:
    id: str
    person_id: str
    sha256: str
    filename: str
    faces: int
    created: str


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    character: str | None
    #: File name of the display picture under pictures/, or None.
    picture: str | None
    created: str
    photos: list[PhotoRecord] = field(default_factory=list)


@dataclass(frozen=True)
class NewPhoto:
    """A photo that passed intake (it has a face), ready to be stored."""

    data: bytes
    sha256: str
    filename: str
    faces: int


@dataclass(frozen=True)
class Snapshot:
    """Everything one build needs, read in one transaction."""

    revision: int
    people: list[Person]


def check_person_id(person_id: str) -> str:
    if not PERSON_ID.match(person_id) or person_id in RESERVED_IDS:
        raise StoreError(
            422,
            f"invalid person id {person_id!r}: use 1-64 lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (and not 'unknown')",
        )
    return person_id


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    def __init__(self, root: Path, max_people: int) -> None:
        self.root = root
        self.max_people = max_people
        self.photos_dir = root / "photos"
        self.pictures_dir = root / "pictures"
        self.cache_dir = root / "cache"
        for folder in (self.photos_dir, self.pictures_dir, self.cache_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._database = root / DATABASE
        with closing(self._connect()) as db:
            db.executescript(SCHEMA)  # its own transaction

    # ---- connections -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._database, timeout=60, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        for pragma in ("foreign_keys = ON", "secure_delete = ON", "synchronous = FULL"):
            db.execute(f"PRAGMA {pragma}")
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): writers queue, never deadlock."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A consistent read of several tables (one deferred transaction)."""
        with closing(self._connect()) as db:
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("ROLLBACK")

    @staticmethod
    def _bump(db: sqlite3.Connection) -> int:
        db.execute("UPDATE counters SET value = value + 1 WHERE name = 'revision'")
        return db.execute("SELECT value FROM counters WHERE name = 'revision'").fetchone()[0]

    # ---- paths -------------------------------------------------------------------------------

    def photo_path(self, photo_id: str) -> Path:
        return self.photos_dir / photo_id

    def picture_path(self, person: Person) -> Path | None:
        return self.pictures_dir / person.picture if person.picture else None

    # ---- reads -------------------------------------------------------------------------------

    def revision(self) -> int:
        with self._reading() as db:
            return db.execute("SELECT value FROM counters WHERE name = 'revision'").fetchone()[0]

    def people(self, person_id: str | None = None) -> list[Person]:
        with self._reading() as db:
            return self._people(db, person_id)

    def person(self, person_id: str) -> Person:
        found = self.people(person_id)
        if not found:
            raise StoreError(404, f"no person {person_id!r}")
        return found[0]

    @staticmethod
    def _people(db: sqlite3.Connection, person_id: str | None = None) -> list[Person]:
        where, args = ("WHERE id = ?", (person_id,)) if person_id is not None else ("", ())
        photos: dict[str, list[PhotoRecord]] = {}
        photo_where = "WHERE person_id = ?" if person_id is not None else ""
        for row in db.execute(f"SELECT * FROM photos {photo_where} ORDER BY created, id", args):
            photos.setdefault(row["person_id"], []).append(PhotoRecord(**dict(row)))
        return [
            Person(
                row["id"],
                row["name"],
                row["character"],
                row["picture"],
                row["created"],
                photos.get(row["id"], []),
            )
            for row in db.execute(f"SELECT * FROM people {where} ORDER BY id", args)
        ]

    def snapshot(self) -> Snapshot:
        with self._reading() as db:
            revision = db.execute("SELECT value FROM counters WHERE name = 'revision'").fetchone()[0]
            return Snapshot(revision, self._people(db))

    def versions(self) -> dict[str, int]:
        """Versions this store's builder published, newest first: name -> revision it holds."""
        with self._reading() as db:
            rows = db.execute("SELECT version, revision FROM versions ORDER BY revision DESC").fetchall()
        return {row["version"]: row["revision"] for row in rows}

    def published_revision(self) -> int:
        return max(self.versions().values(), default=0)

    def erasures(self) -> dict[str, int]:
        """Erased person id -> the revision of its latest erasure."""
        with self._reading() as db:
            rows = db.execute("SELECT person_id, max(revision) AS r FROM erasures GROUP BY person_id")
            return {row["person_id"]: row["r"] for row in rows}

    # ---- changes -----------------------------------------------------------------------------

    def add_person(self, person_id: str, name: str, character: str | None, picture: bytes | None) -> Person:
        """A new person, with no photos yet: no model changes, so no revision."""
        check_person_id(person_id)
        picture_file = secrets.token_hex(8) if picture is not None else None
        if picture is not None and picture_file is not None:
            durable.write_file(self.pictures_dir / picture_file, picture)
        try:
            with self._transaction() as db:
                if db.execute("SELECT 1 FROM people WHERE id = ?", (person_id,)).fetchone():
                    raise StoreError(409, f"person {person_id!r} already exists")
                count = db.execute("SELECT count(*) FROM people").fetchone()[0]
                if count >= self.max_people:
                    raise StoreError(409, f"the store already holds {count} people (ENROL_MAX_PEOPLE)")
                db.execute(
                    "INSERT INTO people VALUES (?, ?, ?, ?, ?)",
                    (person_id, name, character, picture_file, _now()),
                )
        except BaseException:
            if picture_file is not None:
                (self.pictures_dir / picture_file).unlink(missing_ok=True)
            raise
        return self.person(person_id)

    def ensure_person(self, person_id: str, name: str) -> None:
        """Create ``person_id`` if it is new (bulk enrolment); an existing person is left as is."""
        try:
            self.add_person(person_id, name, None, None)
        except StoreError as exc:
            if exc.status != 409 or "already exists" not in exc.detail:
                raise

    def add_photos(self, person_id: str, photos: list[NewPhoto]) -> tuple[list[PhotoRecord | None], int]:
        """Store photos of one person; None for a photo the person already has. Returns the revision."""
        ids = [secrets.token_hex(8) for _ in photos]
        for photo_id, photo in zip(ids, photos, strict=True):
            durable.write_file(self.photo_path(photo_id), photo.data)
        stored: list[PhotoRecord | None] = []
        try:
            with self._transaction() as db:
                if not db.execute("SELECT 1 FROM people WHERE id = ?", (person_id,)).fetchone():
                    raise StoreError(404, f"no person {person_id!r}")
                for photo_id, photo in zip(ids, photos, strict=True):
                    record = PhotoRecord(
                        photo_id, person_id, photo.sha256, photo.filename, photo.faces, _now()
                    )
                    try:
                        db.execute("INSERT INTO photos VALUES (?, ?, ?, ?, ?, ?)", _row(record))
                    except sqlite3.IntegrityError:  # the same bytes for the same person
                        stored.append(None)
                    else:
                        stored.append(record)
                revision = self._bump(db) if any(stored) else self._current(db)
        finally:
            for photo_id, kept in zip(ids, stored + [None] * (len(ids) - len(stored)), strict=True):
                if kept is None:
                    self.photo_path(photo_id).unlink(missing_ok=True)
        return stored, revision

    def delete_photo(self, person_id: str, photo_id: str) -> int:
        with self._transaction() as db:
            row = db.execute(
                "SELECT sha256 FROM photos WHERE id = ? AND person_id = ?", (photo_id, person_id)
            ).fetchone()
            if row is None:
                raise StoreError(404, f"person {person_id!r} has no photo {photo_id!r}")
            db.execute("DELETE FROM photos WHERE id = ?", (photo_id,))
            revision = self._bump(db)
            unused = self._unreferenced(db, [row["sha256"]])
        self._erase_files([photo_id], unused)
        return revision

    def delete_person(self, person_id: str) -> tuple[int, int]:
        """Erase a person: rows, photo files, picture and cached embeddings. Returns (revision, photos)."""
        with self._transaction() as db:
            if not db.execute("SELECT 1 FROM people WHERE id = ?", (person_id,)).fetchone():
                raise StoreError(404, f"no person {person_id!r}")
            rows = db.execute("SELECT id, sha256 FROM photos WHERE person_id = ?", (person_id,)).fetchall()
            picture = db.execute("SELECT picture FROM people WHERE id = ?", (person_id,)).fetchone()[0]
            db.execute("DELETE FROM people WHERE id = ?", (person_id,))  # photos go by cascade
            revision = self._bump(db)
            db.execute("INSERT INTO erasures VALUES (?, ?)", (person_id, revision))
            unused = self._unreferenced(db, [r["sha256"] for r in rows])
        if picture:
            (self.pictures_dir / picture).unlink(missing_ok=True)
        self._erase_files([r["id"] for r in rows], unused)
        return revision, len(rows)

    def record_version(self, version: str, revision: int) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO versions VALUES (?, ?, ?)", (version, revision, _now()))

    def forget_versions(self, versions: list[str]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM versions WHERE version = ?", [(v,) for v in versions])

    # ---- files -------------------------------------------------------------------------------

    @staticmethod
    def _current(db: sqlite3.Connection) -> int:
        return db.execute("SELECT value FROM counters WHERE name = 'revision'").fetchone()[0]

    @staticmethod
    def _unreferenced(db: sqlite3.Connection, shas: list[str]) -> list[str]:
        """Of ``shas``, those no remaining photo has (another person may share a group photo)."""
        return [
            s for s in set(shas) if not db.execute("SELECT 1 FROM photos WHERE sha256 = ?", (s,)).fetchone()
        ]

    def _erase_files(self, photo_ids: list[str], shas: list[str]) -> None:
        for photo_id in photo_ids:
            self.photo_path(photo_id).unlink(missing_ok=True)
        for sha in shas:
            EmbeddingCache.discard(self.cache_dir, sha)

    def leftovers(self) -> list[Path]:
        """Files no row refers to: what a killed process left (temporaries, files of a change that
        never committed or of an erasure that did). ``recover`` deletes them at start-up."""
        with self._reading() as db:
            photo_ids = {row[0] for row in db.execute("SELECT id FROM photos")}
            shas = {row[0] for row in db.execute("SELECT sha256 FROM photos")}
            pictures = {row[0] for row in db.execute("SELECT picture FROM people WHERE picture IS NOT NULL")}
        found = [p for p in self.photos_dir.iterdir() if p.name not in photo_ids]
        found += [p for p in self.pictures_dir.iterdir() if p.name not in pictures]
        found += list(self.cache_dir.glob("*/??/.*.tmp"))
        for sha, paths in EmbeddingCache.entries(self.cache_dir).items():
            if sha not in shas:
                found += paths
        return found

    def recover(self) -> list[Path]:
        """Delete the leftovers; return them."""
        found = self.leftovers()
        for path in found:
            path.unlink(missing_ok=True)
        return found

    def check(self) -> list[str]:
        """Rows whose files are missing or differ (empty when consistent); for tests and ``check``."""
        problems = []
        for person in self.people():
            picture = self.picture_path(person)
            if picture is not None and not picture.is_file():
                problems.append(f"{person.id}: picture missing")
            for photo in person.photos:
                path = self.photo_path(photo.id)
                if not path.is_file():
                    problems.append(f"{person.id}/{photo.id}: photo file missing")
                elif hashlib.sha256(path.read_bytes()).hexdigest() != photo.sha256:
                    problems.append(f"{person.id}/{photo.id}: photo file does not match its sha256")
        return problems


def _row(record: PhotoRecord) -> tuple:
    return (record.id, record.person_id, record.sha256, record.filename, record.faces, record.created)
