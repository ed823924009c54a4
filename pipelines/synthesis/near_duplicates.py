"""Near-duplicate check of a drafted request against the seeds and the queries accepted so far."""

from __future__ import annotations

import numpy as np

from pipelines.curation.minhash import jaccard, shingle_set


class NearDuplicates:
    """Queries seen so far (seeds, then accepted drafts) and their word 3-gram shingle sets.

    Compared exactly rather than through MinHash: the reference set is small (tens to thousands of
    texts), so exact Jaccard costs microseconds and has no estimation error near the threshold.
    """

    def __init__(self, threshold: float):
        self.threshold = threshold
        self._known: list[tuple[str, str, np.ndarray]] = []  # (kind, id, shingles)

    def add(self, kind: str, id_: str, text: str) -> None:
        """Remember ``text`` under ``id_``; ``kind`` ("seed", "accepted") names the rejection it causes."""
        self._known.append((kind, id_, shingle_set(text, ngram=3)))

    def match(self, text: str) -> tuple[str, str, float] | None:
        """``(kind, id, Jaccard)`` of the most similar known query when it reaches the threshold, else None."""
        shingles = shingle_set(text, ngram=3)
        best = max(((k, i, jaccard(shingles, s)) for k, i, s in self._known), key=lambda x: x[2], default=None)
        return best if best is not None and best[2] >= self.threshold else None
