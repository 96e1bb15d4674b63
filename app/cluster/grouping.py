"""Group face embeddings by identity: average linkage at a distance derived from the served model.

Average linkage (what scikit-learn's ``AgglomerativeClustering`` runs) joins two groups while the mean
distance between their faces is within the threshold. A mean, not the nearest pair: joining at
the nearest pair (single linkage, DBSCAN with one neighbour) chains two people together through
one look-alike pair, and among many people there always is one.

The distance between two faces is their cosine distance re-ranked by the Jaccard distance between
their sets of ``NEIGHBOURS`` nearest faces (``neighbour_distances``). Two faces that share no
neighbour are then joined, as without it, only within the threshold; two faces with the same
neighbours up to ``reach`` times as far apart. One person's photos in another light or pose lie
far apart but among the same faces of that person, which is what joins them; two look-alikes'
faces have their own people around them. How far is the embedding's: ``REACH`` for one
embedding, ``JOINED_REACH`` for two joined (``app.cluster.embedding``), which put one person's
faces among more of their own.

The threshold is not a number of its own: it is ``GROUPING_RATIO`` times the served model's
unknown threshold (its calibrated same-person distance, ``manifest.unknown.threshold``), on the
scale of the vectors grouped (the served embedding joined with its companion:
``app.cluster.embedding``), so a new embedding, whose distances have another scale, brings its
own. The ratio and how it was measured are in docs/clustering.md.

scikit-learn holds all n x n distances, which a large archive does not fit. Above ``BLOCK``
faces the faces are first cut into k-means cells of about ``BLOCK / 2`` faces, each cell is grouped
on its own, and groups cut apart by a cell's border are joined by the same rule: the mean
distance between the faces of two groups is ``1 - a . b`` for the means ``a`` and ``b`` of their
unit vectors, so the groups' means are all the join needs (on cosine distances alone: a group's
mean has no neighbours of its own).

The order of the faces never matters: they are sorted by their embeddings first.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from app.artifact.manifest import Manifest
from app.cluster.embedding import Joint, joint_for
from app.model.unknown import l2_normalise

#: The grouping threshold as a multiple of the model's unknown threshold (docs/clustering.md).
GROUPING_RATIO = 1.4
#: The most faces (or groups) grouped in one piece: their distances take BLOCK² x 8 bytes.
BLOCK = 4000
#: k-means' iterations at most, when cutting more than ``BLOCK`` faces into cells of half as many.
CELL_ITERATIONS = 30
#: How many nearest faces make a face's neighbourhood, whose overlap re-ranks distances (docs/clustering.md).
NEIGHBOURS = 5
#: How far shared neighbours stretch the threshold (faces with the same neighbours join this many times
#: as far) on one embedding, and on two joined (docs/clustering.md).
REACH = 1.5
JOINED_REACH = 1.9
#: The fewest faces that make a group; fewer are reported as seen once.
MIN_GROUP = 2
#: Joining groups across cells stops when it no longer shrinks their number by this share.
LEAST_SHRINK = 0.2


class GroupingError(ValueError):
    """The served model cannot group faces (its features are not embeddings, or it has no threshold)."""


def same_person_threshold(manifest: Manifest) -> float:
    """The model's unknown threshold on the scale of the vectors grouped (joined with the companion's)."""
    threshold = manifest.unknown.threshold
    if manifest.unknown.method != "nearest_distance" or threshold is None:
        raise GroupingError(
            f"the served model ({manifest.backend} {manifest.version}, {manifest.features.name} features) "
            "has no same-person distance to group faces by: serve a model trained on face embeddings"
        )
    joint = joint_for(manifest)
    return threshold if joint is None else joint.distance(threshold)


def grouping_threshold(manifest: Manifest) -> float:
    """The average-linkage distance for this model's faces: ``GROUPING_RATIO`` x its same-person one."""
    return GROUPING_RATIO * same_person_threshold(manifest)


def reach_for(joint: Joint | None) -> float:
    """How far shared neighbours stretch the threshold for faces joined by ``joint`` (None: one embedding)."""
    return REACH if joint is None else JOINED_REACH


def group(embeddings: np.ndarray, threshold: float, reach: float = REACH, block: int = BLOCK) -> np.ndarray:
    """A group number per row (0, 1, ...; the same number, the same person), whatever the rows' order.

    ``reach``: how far shared neighbours stretch the threshold (``REACH``, or ``JOINED_REACH``
    for joined embeddings); ``block``: the most rows grouped in one piece (``BLOCK``; smaller in
    tests of the cells).
    """
    if len(embeddings) == 0:
        return np.zeros(0, np.int64)
    unit = np.ascontiguousarray(l2_normalise(embeddings.astype(np.float32)))
    # One canonical order, so the input's cannot matter: the rows sorted by their bytes.
    order = np.argsort(unit.view(np.dtype((np.void, unit.strides[0]))).ravel(), kind="stable")
    labels = np.empty(len(unit), np.int64)
    labels[order] = _group_means(unit[order], threshold, block, reach)
    return labels


def _group_means(means: np.ndarray, threshold: float, block: int, reach: float | None) -> np.ndarray:
    """Average linkage over rows that are means of unit vectors (a unit vector is a one-face group).

    ``reach``: the rows are faces, whose distances are re-ranked by their neighbours with this
    reach; None for groups' means, which are not.
    """
    if len(means) <= block:
        return _average_linkage(means, threshold, reach)
    from sklearn.cluster import KMeans  # here: only an archive this large pays for importing scikit-learn

    # The cells need not be k-means' best, only compact: a few iterations from random faces
    # (k-means++'s seeding of float32 rows cost more than all the rest).
    kmeans = KMeans(
        math.ceil(2 * len(means) / block), init="random", n_init=1, max_iter=CELL_ITERATIONS, random_state=0
    )
    cells = kmeans.fit_predict(means)
    labels = np.empty(len(means), np.int64)
    found = 0
    for cell in np.unique(cells):
        members = np.flatnonzero(cells == cell)
        inside = _group_means(means[members], threshold, block, reach)
        labels[members] = inside + found
        found += int(inside.max()) + 1
    if found > (1 - LEAST_SHRINK) * len(means):
        return labels  # the cells hardly grouped anything: no join across them would either
    membership = sparse.csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))))
    sums = membership @ means.astype(np.float64)
    return _group_means(sums / np.bincount(labels)[:, None], threshold, block, None)[labels]


def _average_linkage(means: np.ndarray, threshold: float, reach: float | None) -> np.ndarray:
    """Average linkage on the mean distances ``1 - a . b`` between the rows' groups, cut at ``threshold``.

    For faces (a ``reach``), each distance is first re-ranked by their neighbours (``neighbour_distances``).

    SciPy's ``linkage``, which scikit-learn's ``AgglomerativeClustering`` runs for average
    linkage, called directly: scikit-learn's bookkeeping around it cost more than the linkage
    itself (docs/clustering.md).
    """
    if len(means) < 2:
        return np.zeros(len(means), np.int64)
    rows = means.astype(np.float32)  # float32 products: half the time, and distances to 1e-6
    distances = np.clip(1.0 - rows @ rows.T, 0.0, 2.0, dtype=np.float64)
    np.fill_diagonal(distances, 0.0)
    if reach is not None:
        distances = neighbour_distances(distances, threshold, reach)
    tree = linkage(squareform(distances, checks=False), method="average")
    return fcluster(tree, threshold, criterion="distance").astype(np.int64) - 1


def neighbour_distances(distances: np.ndarray, threshold: float, reach: float = REACH) -> np.ndarray:
    """Each cosine distance ``d`` re-ranked by the Jaccard distance ``j`` of the two faces' neighbours.

    A face's neighbours are its ``NEIGHBOURS`` nearest other faces (all of them, in an archive of
    fewer); ``j`` is the share of the two sets' union that is not in both. The distance is
    ``d / reach + (1 - 1 / reach) x threshold x j``: a pair of faces that share no neighbour
    keeps the plain rule (joined within ``threshold``), a pair with the same neighbours is joined
    up to ``reach`` times as far. The sets' overlaps are one sparse product.

    Computed in place: ``distances`` (n x n, float64, zero diagonal) becomes the result, so a
    block of faces holds two n x n arrays at once, not five.
    """
    count = len(distances)
    k = min(NEIGHBOURS, count - 1)
    np.fill_diagonal(distances, np.inf)  # a face is not its own neighbour
    nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
    sets = sparse.csr_matrix(
        (np.ones(nearest.size), nearest.ravel(), np.arange(0, nearest.size + 1, k)), (count, count)
    )
    stretch = (sets @ sets.T).toarray()  # shared neighbours, turned in place into the Jaccard term
    stretch /= 2 * k - stretch
    np.subtract(1.0, stretch, out=stretch)
    stretch *= (1 - 1 / reach) * threshold
    np.fill_diagonal(distances, 0.0)
    distances /= reach
    distances += stretch
    np.fill_diagonal(distances, 0.0)
    return distances


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
