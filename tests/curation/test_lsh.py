"""LSH over MinHash signatures: candidate pairs, verified clusters, exact-duplicate groups, union-find."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pipelines.curation.lsh import (
    LSHIndex, UnionFind, exact_duplicate_groups, near_duplicate_clusters, optimal_bands,
)
from pipelines.curation.minhash import minhash_signatures
from tests.curation.test_minhash import random_docs


def edit(text: str, rate: float, seed: int) -> str:
    """Substitute, insert or delete ``rate`` of the words."""
    rng = np.random.default_rng(seed)
    words = text.split()
    for _ in range(max(1, round(rate * len(words)))):
        op, pos = rng.integers(3), int(rng.integers(len(words)))
        if op == 0:
            words[pos] = f"new{rng.integers(10**6)}"
        elif op == 1:
            words.insert(pos, f"new{rng.integers(10**6)}")
        else:
            del words[pos]
    return " ".join(words)


def test_planted_near_duplicates_are_clustered_and_unrelated_documents_are_not():
    docs = random_docs(300, 400, seed=11)
    ids = [f"d{i}" for i in range(len(docs))]
    planted = {("d3", "x-exact"): docs[3], ("d10", "x-case"): docs[10].upper().replace(" ", ",  "),
               ("d20", "x-1pct"): edit(docs[20], 0.01, 1), ("d30", "x-2pct"): edit(docs[30], 0.02, 2)}
    for (_, new), text in planted.items():
        ids.append(new)
        docs.append(text)
    ids.append("x-far")
    docs.append(edit(docs[40], 0.5, 3))  # half the words edited: far below the threshold
    clusters = near_duplicate_clusters(ids, docs)
    assert sorted(map(tuple, clusters)) == sorted(planted)
    assert near_duplicate_clusters(ids, docs, exact=True) == clusters


def test_clusters_are_transitive_and_ordered():
    base = random_docs(1, 600, seed=5)[0]
    chain = [base, edit(base, 0.01, 1)]
    chain.append(edit(chain[-1], 0.01, 2))
    docs = random_docs(20, 600, seed=6) + chain[::-1]
    ids = list(range(len(docs)))
    assert near_duplicate_clusters(ids, docs) == [[20, 21, 22]]


def test_many_copies_form_one_cluster():
    docs = random_docs(5, 100, seed=2) + ["the same text, again and again"] * 150
    clusters = near_duplicate_clusters(range(len(docs)), docs)
    assert clusters == [list(range(5, 155))]


def test_lsh_index_streams_batches_and_verifies_candidates():
    docs = random_docs(100, 300, seed=4)
    docs[50] = edit(docs[7], 0.01, 9)
    sigs = minhash_signatures(docs)
    index = LSHIndex(0.8, 128)
    for lo in range(0, 100, 30):
        index.add_batch([f"d{i}" for i in range(lo, min(lo + 30, 100))], sigs[lo:lo + 30])
    assert len(index) == 100 and index.bands * index.rows <= 128
    assert [7, 50] in index.candidate_pairs().tolist()
    pairs, est = index.near_duplicate_pairs()
    assert pairs.tolist() == [[7, 50]] and est[0] > 0.85
    assert index.clusters() == [["d7", "d50"]]
    with pytest.raises(ValueError):
        index.add_batch(["a"], sigs[:2])
    with pytest.raises(ValueError):
        index.add_batch(["a"], sigs[:1, :64])


def test_optimal_bands():
    assert optimal_bands(0.8, 128, weights=(0.5, 0.5)) == (9, 13)  # the usual equal-weight answer
    for threshold in (0.5, 0.8, 0.95):
        bands, rows = optimal_bands(threshold, 128)
        assert bands * rows <= 128
        assert 1 - (1 - threshold ** rows) ** bands > 0.5  # recall-leaning default
    with pytest.raises(ValueError):
        optimal_bands(0.0, 128)


def test_exact_duplicate_groups():
    ids = ["a", "b", "c", "d", "e"]
    texts = ["Hello world", "hello, WORLD!", "other", "Hello world", "else"]
    assert exact_duplicate_groups(ids, texts) == [["a", "b", "d"]]
    assert exact_duplicate_groups(ids, texts, normalize=False) == [["a", "d"]]


def test_union_find():
    uf: UnionFind[str] = UnionFind(["x"])
    assert uf.union("a", "b") and uf.union("c", "d") and uf.union("b", "d")
    assert not uf.union("a", "c")
    assert uf.connected("a", "d") and not uf.connected("a", "x")
    assert uf.groups() == [["x"], ["a", "b", "c", "d"]]
    assert len(uf) == 5 and "e" not in uf


def test_union_find_matches_naive_components():
    rng = np.random.default_rng(0)
    edges = rng.integers(0, 200, (150, 2)).tolist()
    uf: UnionFind[int] = UnionFind(range(200))
    for a, b in edges:
        uf.union(a, b)
    label = list(range(200))  # naive: relabel until nothing changes
    changed = True
    while changed:
        changed = False
        for a, b in itertools.chain(edges, [(b, a) for a, b in edges]):
            if label[a] > label[b]:
                label[a], changed = label[b], True
    for a, b in rng.integers(0, 200, (500, 2)).tolist():
        assert uf.connected(a, b) == (label[a] == label[b])
