"""Banded LSH over MinHash signatures, and the clusters it finds: near and exact duplicate groups.

:class:`LSHIndex` bands signatures from :func:`~pipelines.curation.minhash.minhash_signatures` into
buckets, so that only documents sharing a whole band become candidate pairs; the bands and rows per
band come from :func:`optimal_bands`. Candidates are verified by their estimated Jaccard similarity
(or, on request, the exact Jaccard of their shingle sets) and joined transitively with
:class:`UnionFind` into clusters. :func:`near_duplicate_clusters` does all of it for a list of texts.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from pipelines.curation.minhash import _mix, _mix_int, jaccard, minhash_signatures, normalized_digest, shingle_set

__all__ = [
    "LSHIndex", "UnionFind", "clusters_from_pairs", "exact_duplicate_groups", "near_duplicate_clusters",
    "optimal_bands",
]

T = TypeVar("T", bound=Hashable)

_ALL_PAIRS_MAX = 64  # LSH buckets up to this size give all pairs; larger ones a star around their first member


def _integrate(f: Any, lo: float, hi: float, points: int = 1001) -> np.ndarray:
    """Trapezoid rule of a vectorised ``f(s)`` over ``[lo, hi]`` (``f`` may return a column of curves)."""
    s = np.linspace(lo, hi, points)
    y = f(s)
    return (y[..., 1:] + y[..., :-1]).sum(axis=-1) * (hi - lo) / (2 * (points - 1))


@functools.lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, *, weights: tuple[float, float] = (0.1, 0.9)) -> tuple[int, int]:
    """The ``(bands, rows)`` with ``bands * rows <= num_perm`` that minimise weighted LSH errors.

    A pair with Jaccard ``s`` becomes a candidate with probability ``1 - (1 - s**rows)**bands``. The
    false-positive error is that probability integrated over ``s < threshold``, the false-negative
    error its complement integrated over ``s >= threshold``; ``weights`` = (false-positive weight,
    false-negative weight). The default leans to recall because candidates are verified afterwards.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    w_fp, w_fn = weights
    best: tuple[float, int, int] | None = None
    for bands in range(1, num_perm + 1):
        rows = np.arange(1, num_perm // bands + 1)[:, None]
        fp = _integrate(lambda s: 1 - (1 - s ** rows) ** bands, 0.0, threshold)
        fn = _integrate(lambda s: (1 - s ** rows) ** bands, threshold, 1.0)
        cost = w_fp * fp + w_fn * fn
        i = int(np.argmin(cost))
        if best is None or cost[i] < best[0]:
            best = (float(cost[i]), bands, i + 1)
    assert best is not None
    return best[1], best[2]


def _bucket_pairs(keys: np.ndarray) -> np.ndarray:
    """Pairs ``(i, j)`` of positions whose keys are equal: all pairs in small buckets, stars in big ones."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    boundary = np.ones(keys.size + 1, bool)
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=boundary[1:-1])
    run_starts = np.flatnonzero(boundary)
    run_lens = np.diff(run_starts)
    multi = run_lens >= 2
    starts, lens = run_starts[:-1][multi], run_lens[multi]
    firsts: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    small = lens <= _ALL_PAIRS_MAX
    s, n = starts[small], lens[small]
    if s.size:
        pos = np.repeat(s, n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        end = np.repeat(s + n, n)
        for d in range(1, int(n.max())):
            ok = pos + d < end
            pos, end = pos[ok], end[ok]
            firsts.append(order[pos])
            seconds.append(order[pos + d])
    s, n = starts[~small], lens[~small]
    if s.size:  # a huge bucket (many copies of one text) would give quadratically many pairs
        members = np.repeat(s, n - 1) + np.arange((n - 1).sum()) - np.repeat(np.cumsum(n - 1) - (n - 1), n - 1) + 1
        firsts.append(order[np.repeat(s, n - 1)])
        seconds.append(order[members])
    if not firsts:
        return np.empty((0, 2), np.int64)
    a, b = np.concatenate(firsts), np.concatenate(seconds)
    return np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1).astype(np.int64)


class LSHIndex:
    """Banded LSH over MinHash signatures, filled batch by batch, keeping only ids and signatures.

    Two documents become a candidate pair when all ``rows`` values of one of the ``bands`` agree.
    ``bands``/``rows`` default to :func:`optimal_bands` for ``threshold`` and ``num_perm``.
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, *,
                 weights: tuple[float, float] = (0.1, 0.9), bands: int | None = None, rows: int | None = None):
        if (bands is None) != (rows is None):
            raise ValueError("give both bands and rows, or neither")
        if bands is None or rows is None:
            bands, rows = optimal_bands(threshold, num_perm, weights=tuple(weights))
        if bands < 1 or rows < 1 or bands * rows > num_perm:
            raise ValueError(f"bands * rows must be at most num_perm={num_perm}, got {bands} x {rows}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold, self.num_perm, self.bands, self.rows = threshold, num_perm, bands, rows
        self._ids: list[Any] = []
        self._signatures: list[np.ndarray] = []
        self._band_keys: list[np.ndarray] = []
        self._mult = np.array([_mix_int(0xA0761D6478BD642F * (i + 1)) | 1 for i in range(bands * rows)],
                              np.uint64).reshape(bands, rows)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[Any]:
        """Ids in insertion order: position ``i`` in :meth:`candidate_pairs` is ``ids[i]``."""
        return self._ids

    @property
    def signatures(self) -> np.ndarray:
        """All signatures added so far, ``(len(self), num_perm)``, in insertion order."""
        if len(self._signatures) != 1:
            self._signatures = [np.concatenate(self._signatures) if self._signatures
                                else np.empty((0, self.num_perm), np.uint32)]
        return self._signatures[0]

    def add_batch(self, ids: Sequence[Any], signatures: np.ndarray) -> None:
        """Add documents: ``ids[i]`` has signature ``signatures[i]`` (from :func:`minhash_signatures`)."""
        signatures = np.asarray(signatures)
        if signatures.ndim != 2 or signatures.shape[1] != self.num_perm:
            raise ValueError(f"signatures must have shape (n, {self.num_perm}), got {signatures.shape}")
        if len(ids) != signatures.shape[0]:
            raise ValueError(f"{len(ids)} ids for {signatures.shape[0]} signatures")
        if not len(ids):
            return
        banded = signatures[:, :self.bands * self.rows].astype(np.uint64).reshape(-1, self.bands, self.rows)
        self._band_keys.append(_mix((banded * self._mult).sum(axis=2, dtype=np.uint64)))
        self._signatures.append(signatures.astype(np.uint32, copy=False))
        self._ids.extend(ids)

    def candidate_pairs(self) -> np.ndarray:
        """Unique candidate pairs as a sorted ``(p, 2)`` int64 array of positions ``i < j``."""
        n = len(self)
        if n < 2:
            return np.empty((0, 2), np.int64)
        keys = np.concatenate(self._band_keys)
        self._band_keys = [keys]
        codes = [p[:, 0] * n + p[:, 1] for p in (_bucket_pairs(keys[:, band]) for band in range(self.bands))]
        unique = np.unique(np.concatenate(codes))
        return np.stack([unique // n, unique % n], axis=1)

    def near_duplicate_pairs(self, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Candidate pairs whose estimated Jaccard is at least ``threshold``, and those estimates."""
        return self.verify_pairs(self.candidate_pairs(), threshold)

    def verify_pairs(self, pairs: np.ndarray, threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ``pairs`` (positions) whose estimated Jaccard is at least ``threshold``, and those estimates."""
        threshold = self.threshold if threshold is None else threshold
        sigs = self.signatures
        est = np.empty(len(pairs))
        step = 1 << 16  # bounds the temporary (pairs, num_perm) comparison block
        for lo in range(0, len(pairs), step):
            p = pairs[lo:lo + step]
            est[lo:lo + step] = np.count_nonzero(sigs[p[:, 0]] == sigs[p[:, 1]], axis=1) / self.num_perm
        keep = est >= threshold
        return pairs[keep], est[keep]

    def clusters(self, threshold: float | None = None) -> list[list[Any]]:
        """Ids grouped by verified near-duplicate pairs (transitively), clusters of two or more only."""
        pairs, _ = self.near_duplicate_pairs(threshold)
        return clusters_from_pairs(self._ids, pairs)


def clusters_from_pairs(ids: Sequence[Any], pairs: np.ndarray) -> list[list[Any]]:
    """Connected components of ``pairs`` (positions into ``ids``) as lists of ids.

    Members keep the order of ``ids``; clusters are ordered by their first member.
    """
    uf: UnionFind[int] = UnionFind()
    for i, j in pairs.tolist():
        uf.union(i, j)
    groups = sorted(sorted(g) for g in uf.groups())
    return [[ids[i] for i in g] for g in groups]


class UnionFind(Generic[T]):
    """Disjoint sets of hashable items, created on first use; union by size with path halving."""

    def __init__(self, items: Iterable[T] = ()):
        self._parent: dict[T, T] = {}
        self._size: dict[T, int] = {}
        for item in items:
            self.add(item)

    def __len__(self) -> int:
        return len(self._parent)

    def __contains__(self, item: object) -> bool:
        return item in self._parent

    def add(self, item: T) -> None:
        """Make ``item`` a set of its own unless it is known already."""
        if item not in self._parent:
            self._parent[item] = item
            self._size[item] = 1

    def find(self, item: T) -> T:
        """The representative of ``item``'s set (adding ``item`` if new)."""
        self.add(item)
        parent = self._parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]  # path halving keeps later finds short
            item = parent[item]
        return item

    def union(self, a: T, b: T) -> bool:
        """Merge the sets of ``a`` and ``b``; False when they were one set already."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size.pop(rb)
        return True

    def connected(self, a: T, b: T) -> bool:
        """Whether ``a`` and ``b`` are in the same set."""
        return self.find(a) == self.find(b)

    def groups(self) -> list[list[T]]:
        """Every set as a list, members and sets in the order items were first added."""
        out: dict[T, list[T]] = {}
        for item in self._parent:
            out.setdefault(self.find(item), []).append(item)
        return list(out.values())


def exact_duplicate_groups(ids: Iterable[Any], keys: Iterable[Hashable], *, normalize: bool = True) -> list[list[Any]]:
    """Ids whose keys are equal, as groups of two or more in input order.

    With ``normalize`` (the default) ``keys`` are texts compared by :func:`normalized_digest`, so
    case, punctuation and spacing do not matter; otherwise they are compared as given.
    """
    groups: dict[Hashable, list[Any]] = {}
    for id_, key in zip(ids, keys, strict=True):
        groups.setdefault(normalized_digest(key) if normalize else key, []).append(id_)
    return [g for g in groups.values() if len(g) >= 2]


def near_duplicate_clusters(ids: Iterable[Any], texts: Iterable[str], *, threshold: float = 0.8, num_perm: int = 128,
                            ngram: int = 3, seed: int = 1, exact: bool = False, workers: int = 1) -> list[list[Any]]:
    """Clusters (two or more ids) of texts whose word ``ngram``-gram sets have Jaccard >= ``threshold``.

    Candidates come from banded LSH over MinHash signatures; a pair is kept when its estimated
    Jaccard (or, with ``exact``, the Jaccard of the shingle sets) reaches ``threshold``; kept pairs
    are joined transitively. Members are in input order, clusters ordered by first member. Texts
    without any word (empty, only punctuation) have equal signatures and so cluster together.
    """
    ids, texts = list(ids), list(texts)
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
    index = LSHIndex(threshold, num_perm)
    index.add_batch(ids, minhash_signatures(texts, num_perm=num_perm, ngram=ngram, seed=seed, workers=workers))
    if not exact:
        return index.clusters()
    pairs = index.candidate_pairs()
    sets: dict[int, np.ndarray] = {}
    for i in np.unique(pairs).tolist():
        sets[i] = shingle_set(texts[i], ngram=ngram)
    keep = [jaccard(sets[i], sets[j]) >= threshold for i, j in pairs.tolist()]
    return clusters_from_pairs(ids, pairs[np.array(keep, bool)] if keep else pairs)
