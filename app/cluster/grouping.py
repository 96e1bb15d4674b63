"""Group face embeddings by identity: average linkage at a distance derived from the served model.

Average linkage (what scikit-learn's ``AgglomerativeClustering`` runs) joins two groups while the mean
cosine distance between their faces is within the threshold. A mean, not the nearest pair:
joining at the nearest pair (single linkage, DBSCAN with one neighbour) chains two people
together through one look-alike pair, and among many people there always is one.

The threshold is not a number of its own: it is ``GROUPING_RATIO`` times the served model's
unknown threshold (its calibrated same-person distance, ``manifest.unknown.threshold``), so a
new embedding, whose distances have another scale, brings its own. The ratio and how it was
measured are in docs/clustering.md.

scikit-learn holds all n x n distances, which a large archive does not fit. Above ``BLOCK``
faces the faces are first cut into k-means cells of about ``CELL`` faces, each cell is grouped
on its own, and groups cut apart by a cell's border are joined by the same rule: the mean
distance between the faces of two groups is ``1 - a . b`` for the means ``a`` and ``b`` of their
unit vectors, so the groups' means are all the join needs.

The order of the faces never matters: they are sorted by their embeddings first.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.cluster import KMeans

from app.artifact.manifest import Manifest
from app.model.unknown import l2_normalise

#: The grouping threshold as a multiple of the model's unknown threshold (docs/clustering.md).
GROUPING_RATIO = 1.4
#: The most faces (or groups) grouped in one piece: their distances take BLOCK² x 8 bytes.
BLOCK = 4000
#: Faces per k-means cell when there are more than ``BLOCK``.
CELL = 2000
#: The fewest faces that make a group; fewer are reported as seen once.
MIN_GROUP = 2
#: Joining groups across cells stops when it no longer shrinks their number by this share.
LEAST_SHRINK = 0.2


class GroupingError(ValueError):
    """The served model cannot group faces (its features are not embeddings, or it has no threshold)."""


def grouping_threshold(manifest: Manifest) -> float:
    """The average-linkage distance for this model's embeddings: ``GROUPING_RATIO`` x its unknown one."""
    threshold = manifest.unknown.threshold
    if manifest.unknown.method != "nearest_distance" or threshold is None:
        raise GroupingError(
            f"the served model ({manifest.backend} {manifest.version}, {manifest.features.name} features) "
            "has no same-person distance to group faces by: serve a model trained on face embeddings"
        )
    return GROUPING_RATIO * threshold


def group(embeddings: np.ndarray, threshold: float) -> np.ndarray:
    """A group number per row (0, 1, ...; the same number, the same person), whatever the rows' order."""
    if len(embeddings) == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort(embeddings.T[::-1])  # one canonical order, so the input's order cannot matter
    labels = np.empty(len(embeddings), np.int64)
    labels[order] = _group_means(l2_normalise(embeddings[order].astype(np.float64)), threshold)
    return labels


def _group_means(means: np.ndarray, threshold: float) -> np.ndarray:
    """Average linkage over rows that are means of unit vectors (a unit vector is a one-face group)."""
    if len(means) <= BLOCK:
        return _average_linkage(means, threshold)
    cells = KMeans(math.ceil(len(means) / CELL), n_init=1, random_state=0).fit_predict(means)
    labels = np.empty(len(means), np.int64)
    found = 0
    for cell in np.unique(cells):
        members = np.flatnonzero(cells == cell)
        inside = _group_means(means[members], threshold)
        labels[members] = inside + found
        found += int(inside.max()) + 1
    if found > (1 - LEAST_SHRINK) * len(means):
        return labels  # the cells hardly grouped anything: no join across them would either
    counts = np.bincount(labels).astype(np.float64)
    sums = np.zeros((found, means.shape[1]))
    np.add.at(sums, labels, means)
    return _group_means(sums / counts[:, None], threshold)[labels]


def _average_linkage(means: np.ndarray, threshold: float) -> np.ndarray:
    """Average linkage on the mean distances ``1 - a . b`` between the rows' groups, cut at ``threshold``.

    SciPy's ``linkage``, which scikit-learn's ``AgglomerativeClustering`` runs for average
    linkage, called directly: scikit-learn's bookkeeping around it took four times as long.
    """
    if len(means) < 2:
        return np.zeros(len(means), np.int64)
    rows = means.astype(np.float32)  # float32 products: half the time, and distances to 1e-6
    distances = np.clip(1.0 - rows @ rows.T, 0.0, 2.0).astype(np.float64)
    np.fill_diagonal(distances, 0.0)
    tree = linkage(squareform(distances, checks=False), method="average")
    return fcluster(tree, threshold, criterion="distance").astype(np.int64) - 1


def attach(
    embeddings: np.ndarray, labels: np.ndarray, candidates: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate row joins the group whose centre is nearest, when it is within ``threshold``.

    For faces kept out of the grouping (too small, blurred): the unknown threshold is how close
    a face must be to a person's face for the model to name it, so it is how close such a face
    must be to a group. Returns the labels with the joins, and each row's cosine distance to its
    group's centre (NaN outside any group).
    """
    unit = l2_normalise(embeddings.astype(np.float64))
    labels = labels.copy()
    distance = np.full(len(unit), np.nan)
    if labels.max(initial=-1) < 0:
        return labels, distance
    ids = np.unique(labels[labels >= 0])
    centres = l2_normalise(np.stack([unit[labels == i].mean(axis=0) for i in ids]))
    if candidates.any():
        similarity = unit[candidates] @ centres.T
        nearest = similarity.argmax(axis=1)
        close = 1.0 - similarity[np.arange(len(nearest)), nearest] <= threshold
        rows = np.flatnonzero(candidates)
        labels[rows[close]] = ids[nearest[close]]
    grouped = labels >= 0
    position = np.searchsorted(ids, labels[grouped])
    distance[grouped] = 1.0 - np.einsum("ij,ij->i", unit[grouped], centres[position])
    return labels, distance


def drop_small(labels: np.ndarray, least: int = MIN_GROUP) -> np.ndarray:
    """Groups of fewer than ``least`` faces become -1 (seen once); the rest keep their numbers."""
    labels = labels.copy()
    if len(labels) == 0:
        return labels
    sizes = np.bincount(labels[labels >= 0], minlength=1)
    labels[(labels >= 0) & (sizes[np.maximum(labels, 0)] < least)] = -1
    return labels
