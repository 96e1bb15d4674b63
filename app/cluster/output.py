"""What ``python -m app cluster`` leaves in DIR: face folders, ``groups.jsonl`` and ``index.html``.

- ``DIR/group-01/``...: the faces of one unnamed person each, largest group first, as JPEGs with
  the margin training needs to find the face again. Rename a folder to the person's id,
  delete what is not them, and it is a person folder for ``python -m training train`` or
  ``python -m enrolment import``.
- ``DIR/ungrouped/``: faces seen once, or too small to group; ``DIR/known/<id>/``: the faces
  the served model named, to check.
- ``DIR/groups.jsonl``: a row per face: its photo, box, label, group, distance to the group's
  centre, and quality (``good``, ``low``: too small, or ``blurred``).
- ``DIR/index.html``: a contact sheet per group, each face linked to its photo; a plain file
  with no script, to open in any browser. Written last: a DIR with it is a finished run.
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from app.cluster.faces import face_images
from app.cluster.people import Placed

GROUPS_FILE = "groups.jsonl"
PAGE_FILE = "index.html"
UNGROUPED = "ungrouped"
KNOWN = "known"


@dataclass(frozen=True)
class RunFacts:
    """What the page's header says about the run."""

    source: str
    model: str
    group_threshold: float
    unknown_threshold: float
    photos: int
    no_face: int
    errors: dict[str, str]


def folder_of(placed: Placed) -> PurePosixPath:
    if placed.kind == "group":
        return PurePosixPath(str(placed.name))
    if placed.kind == "known":
        return PurePosixPath(KNOWN, str(placed.name))
    return PurePosixPath(UNGROUPED)


def image_names(placed: list[Placed]) -> list[PurePosixPath]:
    """Where each face's image goes in DIR: its folder, then its photo's name and the face's number."""
    taken: set[PurePosixPath] = set()
    names = []
    for p in placed:
        stem = PurePosixPath(p.face.photo).stem
        name = folder_of(p) / f"{stem}-{p.face.index}.jpg"
        if name in taken:  # two photos of one name in different sub-folders
            name = name.with_name(f"{stem}-{p.face.sha256[:8]}-{p.face.index}.jpg")
        taken.add(name)
        names.append(name)
    return names


def photo_link(source: str, photo: str, out: Path) -> str:
    """The photo's address from DIR: relative for a local folder, so DIR and the photos can move together."""
    if "://" in source:
        return f"{source.rstrip('/')}/{quote(photo)}"
    return quote(Path(os.path.relpath(Path(source).resolve() / photo, out.resolve())).as_posix())


def write_output(out: Path, placed: list[Placed], facts: RunFacts) -> None:
    """Face images, ``groups.jsonl``, then ``index.html``, into ``out``."""
    names = image_names(placed)
    # In the order of the part files, so each is read once, not all held in memory at once.
    by_part = sorted(range(len(placed)), key=lambda i: placed[i].face.image)
    for i, image in zip(by_part, face_images([placed[i].face for i in by_part]), strict=True):
        path = out / names[i]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)
    with (out / GROUPS_FILE).open("w", encoding="utf-8") as stream:
        for p, name in zip(placed, names, strict=True):
            row = {
                "photo": p.face.photo,
                "face": p.face.index,
                "box": p.face.box.as_dict(),
                "label": p.face.label,
                "confidence": round(p.face.confidence, 6),
                "group": p.name if p.kind == "group" else None,
                "distance": None if p.distance is None else round(p.distance, 6),
                "quality": p.face.grade,
                "sharpness": round(p.face.sharpness, 1),
                "ungrouped": p.why,
                "image": name.as_posix(),
            }
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out / PAGE_FILE).write_text(page(placed, names, facts, out), encoding="utf-8")


STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
h2 .count { color: #666; font-weight: normal; }
.how { background: #f4f4f0; padding: .6em 1em; border-radius: 6px; }
.sheet { display: flex; flex-wrap: wrap; gap: 6px; }
.sheet a { display: block; width: 112px; text-decoration: none; color: #555; font-size: 11px; }
.sheet img { width: 112px; height: 112px; object-fit: cover; border-radius: 4px; display: block; }
.sheet span { display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
code { background: #eee; padding: 0 .2em; }
"""


def page(placed: list[Placed], names: list[PurePosixPath], facts: RunFacts, out: Path) -> str:
    """The contact sheets as one HTML file, images and photos linked by relative paths."""
    sections: dict[str, list[str]] = {}
    titles: dict[str, str] = {}
    for p, name in zip(placed, names, strict=True):
        folder = folder_of(p).as_posix()
        if p.kind == "group":
            titles[folder] = f"{folder}/"
        elif p.kind == "known":
            titles[folder] = f"{p.name} (known to the model), {folder}/"
        else:
            titles[folder] = f"not grouped (seen once, too small or blurred), {folder}/"
        caption = p.face.photo if p.distance is None else f"{p.distance:.2f} · {p.face.photo}"
        sections.setdefault(folder, []).append(
            f'<a href="{html.escape(photo_link(facts.source, p.face.photo, out))}" '
            f'title="{html.escape(caption)}"><img src="{html.escape(quote(name.as_posix()))}" '
            f'alt="face {p.face.index} of {html.escape(p.face.photo)}" loading="lazy">'
            f"<span>{html.escape(caption)}</span></a>"
        )
    kinds = Counter(p.kind for p in placed)
    groups = sum(1 for folder in sections if not folder.startswith((UNGROUPED, KNOWN)))
    errors = "".join(
        f"<li><code>{html.escape(path)}</code>: {html.escape(why)}</li>"
        for path, why in sorted(facts.errors.items())
    )
    body = [
        "<h1>Faces to name</h1>",
        f"<p>{facts.photos} photos from <code>{html.escape(facts.source)}</code>: {len(placed)} faces, "
        f"{kinds['group']} of them in {groups} groups, {kinds['ungrouped']} not grouped, {kinds['known']} "
        f"named by the model ({html.escape(facts.model)}); {facts.no_face} photos without a face, "
        f"{len(facts.errors)} files unreadable. Faces are grouped when their mean cosine distance is "
        f"within {facts.group_threshold:.3f} ({facts.unknown_threshold:.3f}, the model's unknown "
        "threshold on the scale of the embeddings grouped, times the grouping ratio). The number "
        "under a face is its distance to its "
        "group's centre; a click opens its photo.</p>",
        '<p class="how">To name a group: rename its folder to the person\'s id (e.g. '
        "<code>frodo_baggins</code>), delete the faces that are not them, and move the folder beside "
        "your other person folders; then train (<code>python -m training train --data ...</code>) or "
        "enrol it (<code>python -m enrolment import ...</code>).</p>",
    ]
    for folder, cells in sections.items():
        count = f"{len(cells)} face{'s' if len(cells) != 1 else ''}"
        body.append(
            f'<section id="{html.escape(folder)}"><h2>{html.escape(titles[folder])} '
            f'<span class="count">{count}</span></h2><div class="sheet">{"".join(cells)}</div></section>'
        )
    if errors:
        body.append(f"<h2>Files that could not be read</h2><ul>{errors}</ul>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Faces to name: {html.escape(facts.source)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
