"""Who is enrolled: people and photos in SQLite, photo files beside it, embeddings in the cache.

Layout of the store folder::

    people.sqlite3          people, photos, "not this person" faces, reference embeddings of
                            adopted people, the revision counter, published versions, erasures
    photos/<id>             each enrolled or corrected photo's bytes, as uploaded
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
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from app.artifact.manifest import StageSpec
from enrolment import durable
from enrolment.records import (
    Adopted,
    FaceRef,
    NegativeRecord,
    NewPhoto,
    Person,
    PhotoRecord,
    Seeded,
    Snapshot,
    StoreError,
    box_from_json,
    box_json,
    check_person_id,
)
from training.cache import EmbeddingCache

DATABASE = "people.sqlite3"

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
CREATE TABLE IF NOT EXISTS store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO store_info VALUES ('id', lower(hex(randomblob(8))));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('revision', 0);
CREATE TABLE IF NOT EXISTS versions (
    version TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS erasures (person_id TEXT NOT NULL, revision INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS negatives (
    id TEXT PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    filename TEXT NOT NULL,
    faces INTEGER NOT NULL,
    created TEXT NOT NULL,
    box TEXT NOT NULL,
    analysed_box TEXT NOT NULL,
    answered TEXT,
    model_version TEXT,
    UNIQUE (person_id, sha256, analysed_box)
);
CREATE TABLE IF NOT EXISTS seeded (
    person_id TEXT PRIMARY KEY REFERENCES people(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    detector TEXT NOT NULL,
    features TEXT NOT NULL,
    count INTEGER NOT NULL,
    labelled_by TEXT NOT NULL,
    created TEXT NOT NULL,
    vectors BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS adoptions (
    version TEXT NOT NULL, revision INTEGER NOT NULL, created TEXT NOT NULL
);
"""
#: Columns later releases added to ``photos``, added to an older store when it opens: which face
#: of the photo a correction means, and the answer it corrected (all NULL for an upload).
PHOTO_CORRECTION_COLUMNS = ("box", "analysed_box", "answered", "model_version")


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
            present = {row["name"] for row in db.execute("PRAGMA table_info(photos)")}
            for column in PHOTO_CORRECTION_COLUMNS:
                if column not in present:
                    db.execute(f"ALTER TABLE photos ADD COLUMN {column} TEXT")
            #: This store's id, written into the versions it builds: they are told from others' by it.
            self.id: str = db.execute("SELECT value FROM store_info WHERE key = 'id'").fetchone()[0]

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
        of_person = "WHERE person_id = ?" if person_id is not None else ""
        photos: dict[str, list[PhotoRecord]] = {}
        for row in db.execute(f"SELECT * FROM photos {of_person} ORDER BY created, id", args):
            photos.setdefault(row["person_id"], []).append(_photo(row))
        negatives: dict[str, list[NegativeRecord]] = {}
        for row in db.execute(f"SELECT * FROM negatives {of_person} ORDER BY created, id", args):
            negatives.setdefault(row["person_id"], []).append(_negative(row))
        seeded = {
            row["person_id"]: _seeded(row) for row in db.execute(f"SELECT * FROM seeded {of_person}", args)
        }
        return [
            Person(
                row["id"],
                row["name"],
                row["character"],
                row["picture"],
                row["created"],
                photos.get(row["id"], []),
                negatives.get(row["id"], []),
                seeded.get(row["id"]),
            )
            for row in db.execute(f"SELECT * FROM people {where} ORDER BY id", args)
        ]

    def snapshot(self) -> Snapshot:
        with self._reading() as db:
            revision = db.execute("SELECT value FROM counters WHERE name = 'revision'").fetchone()[0]
            references = {
                row["person_id"]: np.frombuffer(row["vectors"], np.float32).reshape(row["count"], -1)
                for row in db.execute("SELECT person_id, count, vectors FROM seeded")
            }
            return Snapshot(revision, self._people(db), references)

    def adoption(self) -> tuple[str, int] | None:
        """The served version this store adopted its first people from, and the revision that made."""
        with self._reading() as db:
            row = db.execute("SELECT version, revision FROM adoptions").fetchone()
        return (row["version"], row["revision"]) if row else None

    def correction(self, correction_id: str) -> PhotoRecord | NegativeRecord:
        """A correction by its id: a photo a correction added, or a "not this person" face."""
        with self._reading() as db:
            row = db.execute(
                "SELECT * FROM photos WHERE id = ? AND box IS NOT NULL", (correction_id,)
            ).fetchone()
            if row is not None:
                return _photo(row)
            row = db.execute("SELECT * FROM negatives WHERE id = ?", (correction_id,)).fetchone()
        if row is None:
            raise StoreError(404, f"no correction {correction_id!r}")
        return _negative(row)

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
                _insert_person(db, person_id, name, character, picture_file)
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

    def adopt(self, version: str, people: list[Adopted]) -> int | None:
        """Take in a served version's people, with their reference embeddings, as this store's first.

        Only a store that never held anyone does (no revision yet): afterwards the people are
        the store's own, and an erased person must never come back. Returns the revision, or
        None when the store was not new.
        """
        pictures = {p.id: secrets.token_hex(8) for p in people if p.picture is not None}
        for person in people:
            if person.picture is not None:
                durable.write_file(self.pictures_dir / pictures[person.id], person.picture)
        revision = None
        try:
            with self._transaction() as db:
                if self._current(db) or db.execute("SELECT 1 FROM people").fetchone():
                    return None
                for person in people:
                    _insert_person(db, person.id, person.name, person.character, pictures.get(person.id))
                    db.execute("INSERT INTO seeded VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _seeded_row(person))
                revision = self._bump(db)
                db.execute("INSERT INTO adoptions VALUES (?, ?, ?)", (version, revision, _now()))
        finally:
            if revision is None:
                for name in pictures.values():
                    (self.pictures_dir / name).unlink(missing_ok=True)
        return revision

    def add_photos(self, person_id: str, photos: list[NewPhoto]) -> tuple[list[PhotoRecord | None], int]:
        """Store photos of one person; None for a photo the person already has. Returns the revision."""
        ids = [secrets.token_hex(8) for _ in photos]
        for photo_id, photo in zip(ids, photos, strict=True):
            durable.write_file(self.photo_path(photo_id), photo.data)
        stored: list[PhotoRecord | None] = []
        try:
            with self._transaction() as db:
                _require_person(db, person_id)
                for photo_id, photo in zip(ids, photos, strict=True):
                    record = PhotoRecord(
                        photo_id,
                        person_id,
                        photo.sha256,
                        photo.filename,
                        photo.faces,
                        _now(),
                        photo.correction,
                    )
                    _refuse_contradiction(db, "negatives", person_id, photo)
                    try:
                        db.execute(f"INSERT INTO photos ({PHOTO_COLUMNS}) VALUES ({_MARKS})", _row(record))
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

    def add_negative(self, person_id: str, photo: NewPhoto) -> tuple[NegativeRecord, int]:
        """Keep a face a user said is not ``person_id`` (``photo.correction`` names it); returns it
        and the revision."""
        correction = photo.correction
        if correction is None:
            raise ValueError("a 'not this person' face needs its correction: which face, what was answered")
        record = NegativeRecord(
            secrets.token_hex(8), person_id, photo.sha256, photo.filename, photo.faces, _now(), correction
        )
        durable.write_file(self.photo_path(record.id), photo.data)
        try:
            with self._transaction() as db:
                _require_person(db, person_id)
                _refuse_contradiction(db, "photos", person_id, photo)
                try:
                    db.execute(f"INSERT INTO negatives ({NEGATIVE_COLUMNS}) VALUES ({_MARKS})", _row(record))
                except sqlite3.IntegrityError:
                    raise StoreError(409, f"this face is already marked as not {person_id!r}") from None
                revision = self._bump(db)
        except BaseException:
            self.photo_path(record.id).unlink(missing_ok=True)
            raise
        return record, revision

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

    def undo_correction(self, correction_id: str) -> tuple[PhotoRecord | NegativeRecord, int]:
        """Forget a correction (its photo or its "not this person" face); returns it and the revision."""
        record = self.correction(correction_id)
        table = "negatives" if isinstance(record, NegativeRecord) else "photos"
        with self._transaction() as db:
            if not db.execute(f"DELETE FROM {table} WHERE id = ?", (correction_id,)).rowcount:
                raise StoreError(404, f"no correction {correction_id!r}")
            revision = self._bump(db)
            unused = self._unreferenced(db, [record.sha256])
        self._erase_files([correction_id], unused)
        return record, revision

    def drop_seeded(self, person_id: str) -> int:
        """Forget the reference embeddings ``person_id`` was adopted with; returns the revision."""
        with self._transaction() as db:
            _require_person(db, person_id)
            if not db.execute("DELETE FROM seeded WHERE person_id = ?", (person_id,)).rowcount:
                raise StoreError(404, f"person {person_id!r} has no seeded reference embeddings")
            return self._bump(db)

    def delete_person(self, person_id: str) -> tuple[int, int]:
        """Erase a person: rows, photo files, picture, reference embeddings, "not them" faces and
        cached embeddings. Returns (revision, photos)."""
        with self._transaction() as db:
            _require_person(db, person_id)
            rows = db.execute("SELECT id, sha256 FROM photos WHERE person_id = ?", (person_id,)).fetchall()
            negatives = db.execute(
                "SELECT id, sha256 FROM negatives WHERE person_id = ?", (person_id,)
            ).fetchall()
            picture = db.execute("SELECT picture FROM people WHERE id = ?", (person_id,)).fetchone()[0]
            db.execute("DELETE FROM people WHERE id = ?", (person_id,))  # the rest goes by cascade
            revision = self._bump(db)
            db.execute("INSERT INTO erasures VALUES (?, ?)", (person_id, revision))
            unused = self._unreferenced(db, [r["sha256"] for r in (*rows, *negatives)])
        if picture:
            (self.pictures_dir / picture).unlink(missing_ok=True)
        self._erase_files([r["id"] for r in (*rows, *negatives)], unused)
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
        """Of ``shas``, those no remaining photo or corrected face has (another person may share a
        group photo)."""
        query = "SELECT 1 FROM photos WHERE sha256 = ? UNION ALL SELECT 1 FROM negatives WHERE sha256 = ?"
        return [s for s in set(shas) if not db.execute(query, (s, s)).fetchone()]

    def _erase_files(self, photo_ids: list[str], shas: list[str]) -> None:
        for photo_id in photo_ids:
            self.photo_path(photo_id).unlink(missing_ok=True)
        for sha in shas:
            EmbeddingCache.discard(self.cache_dir, sha)

    def leftovers(self) -> list[Path]:
        """Files no row refers to: what a killed process left (temporaries, files of a change that
        never committed or of an erasure that did). ``recover`` deletes them at start-up."""
        with self._reading() as db:
            query = "SELECT id, sha256 FROM photos UNION ALL SELECT id, sha256 FROM negatives"
            rows = db.execute(query).fetchall()
            photo_ids, shas = {row[0] for row in rows}, {row[1] for row in rows}
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
            for photo in person.stored_photos:
                path = self.photo_path(photo.id)
                if not path.is_file():
                    problems.append(f"{person.id}/{photo.id}: photo file missing")
                elif hashlib.sha256(path.read_bytes()).hexdigest() != photo.sha256:
                    problems.append(f"{person.id}/{photo.id}: photo file does not match its sha256")
        return problems


PHOTO_COLUMNS = "id, person_id, sha256, filename, faces, created, box, analysed_box, answered, model_version"
NEGATIVE_COLUMNS = PHOTO_COLUMNS
_MARKS = ", ".join("?" * len(PHOTO_COLUMNS.split(",")))


def _insert_person(
    db: sqlite3.Connection, person_id: str, name: str, character: str | None, picture: str | None
) -> None:
    db.execute("INSERT INTO people VALUES (?, ?, ?, ?, ?)", (person_id, name, character, picture, _now()))


def _require_person(db: sqlite3.Connection, person_id: str) -> None:
    if not db.execute("SELECT 1 FROM people WHERE id = ?", (person_id,)).fetchone():
        raise StoreError(404, f"no person {person_id!r}")


def _refuse_contradiction(db: sqlite3.Connection, table: str, person_id: str, photo: NewPhoto) -> None:
    """A face cannot be corrected both as ``person_id`` and as not them: the other must be undone first.

    ``table`` is where the opposite verdict would be: ``negatives`` for a photo a correction adds,
    ``photos`` for a "not this person" face.
    """
    if photo.correction is None:
        return
    row = db.execute(
        f"SELECT id FROM {table} WHERE person_id = ? AND sha256 = ? AND analysed_box = ?",
        (person_id, photo.sha256, box_json(photo.correction.analysed_box)),
    ).fetchone()
    if row is not None:
        said = "not " if table == "negatives" else ""
        raise StoreError(
            409,
            f"this face is already corrected as {said}{person_id!r} (correction {row['id']}): "
            f"undo that first (DELETE /v1/corrections/{row['id']})",
        )


def _row(record: PhotoRecord | NegativeRecord) -> tuple:
    face = record.correction
    return (
        record.id,
        record.person_id,
        record.sha256,
        record.filename,
        record.faces,
        record.created,
        box_json(face.box) if face else None,
        box_json(face.analysed_box) if face else None,
        face.answered if face else None,
        face.model_version if face else None,
    )


def _face(row: sqlite3.Row) -> FaceRef | None:
    if row["box"] is None:
        return None
    return FaceRef(
        box_from_json(row["box"]), box_from_json(row["analysed_box"]), row["answered"], row["model_version"]
    )


def _photo(row: sqlite3.Row) -> PhotoRecord:
    return PhotoRecord(
        row["id"], row["person_id"], row["sha256"], row["filename"], row["faces"], row["created"], _face(row)
    )


def _negative(row: sqlite3.Row) -> NegativeRecord:
    face = _face(row)
    assert face is not None  # the table's box columns are NOT NULL
    return NegativeRecord(
        row["id"], row["person_id"], row["sha256"], row["filename"], row["faces"], row["created"], face
    )


def _seeded(row: sqlite3.Row) -> Seeded:
    return Seeded(
        row["version"],
        StageSpec.model_validate_json(row["detector"]),
        StageSpec.model_validate_json(row["features"]),
        row["count"],
        row["labelled_by"],
        row["created"],
    )


def _seeded_row(person: Adopted) -> tuple:
    seeded = person.seeded
    return (
        person.id,
        seeded.version,
        seeded.detector.model_dump_json(),
        seeded.features.model_dump_json(),
        seeded.count,
        seeded.labelled_by,
        seeded.created,
        np.ascontiguousarray(person.references, np.float32).tobytes(),
    )
