"""MinHash signatures: normalisation, hashing, densification, Jaccard estimates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.curation import minhash as mh
from pipelines.curation.minhash import (
    EMPTY, estimated_jaccard, jaccard, minhash_signatures, normalize_text, shingle_set,
)

REPO = Path(__file__).resolve().parents[2]
MASK = (1 << 64) - 1


def random_docs(n: int, words: int, seed: int = 0, vocab: int = 5000) -> list[str]:
    """Unrelated documents from a shared vocabulary (so they share words but few word 3-grams)."""
    rng = np.random.default_rng(seed)
    return [" ".join(f"w{i}" for i in rng.integers(0, vocab, words)) for _ in range(n)]


def reference_shingles(text: str, ngram: int) -> list[int]:
    """The documented hash definition in plain Python: the vectorised code must agree with it."""
    def word_hash(word: bytes) -> int:
        return mh._mix_int(sum(b * pow(mh._WORD_BASE, j, 1 << 64) for j, b in enumerate(word)) & MASK)

    hashes = [word_hash(w.encode()) for w in normalize_text(text).split()]
    mult = [int(m) for m in mh._ngram_multipliers(ngram)]
    if not hashes:
        return []
    if len(hashes) < ngram:
        return [sum(h * m for h, m in zip(hashes, mult)) & MASK]
    return [sum(hashes[i + k] * mult[k] for k in range(ngram)) & MASK for i in range(len(hashes) - ngram + 1)]


def test_normalize_text_folds_case_punctuation_and_spacing():
    assert normalize_text("Hello,  World_42!\n\tBye...") == "hello world 42 bye"
    assert normalize_text("STRASSE Straße") == "strasse strasse"
    assert normalize_text("  --  ") == ""
    assert normalize_text("Café—crème «déjà» vu") == "café crème déjà vu"


@pytest.mark.parametrize("ngram", [1, 2, 3, 5])
def test_vectorised_shingles_match_the_plain_python_definition(ngram):
    texts = ["Hello, World! foo_bar BAZ qux", "", " ... ", "one", "two words", "a b c d e f g",
             "Ünïcödé straße — İstanbul 東京 Tokyo, déjà-vu", "x" * 300 + " y z"]
    got, counts = mh._shingle_hashes(texts, ngram)
    assert got.tolist() == [h for t in texts for h in reference_shingles(t, ngram)]
    assert counts.tolist() == [len(reference_shingles(t, ngram)) for t in texts]


def test_long_buffers_are_hashed_in_segments_with_the_same_result(monkeypatch):
    texts = random_docs(3, 400) + ["z" * 5000 + " tail end"]  # the last has one word longer than a segment
    whole, _ = mh._shingle_hashes(texts, 3)
    monkeypatch.setattr(mh, "_SEGMENT_BYTES", 1000)
    pieces, _ = mh._shingle_hashes(texts, 3)
    assert np.array_equal(whole, pieces)


def test_signatures_ignore_case_punctuation_and_spacing():
    sigs = minhash_signatures(["The cat, the HAT.", "the cat the hat", "Über Straße!", "über  STRASSE"])
    assert sigs.shape == (4, 128) and sigs.dtype == np.uint32
    assert np.array_equal(sigs[0], sigs[1])
    assert np.array_equal(sigs[2], sigs[3])
    assert not np.array_equal(sigs[0], sigs[2])


def test_signatures_are_deterministic_for_a_seed_and_independent_of_batching():
    docs = random_docs(40, 300)
    a = minhash_signatures(docs, seed=7)
    assert np.array_equal(a, minhash_signatures(docs, seed=7, batch_bytes=500))
    assert np.array_equal(a[5:9], minhash_signatures(docs[5:9], seed=7))
    assert not np.array_equal(a, minhash_signatures(docs, seed=8))


PLAIN_DOCS = "[' '.join(f'w{(i * 7919 + j * j * 104729) % 5000}' for j in range(200)) for i in range(30)]"


def test_signatures_are_the_same_in_a_worker_pool_and_in_another_process():
    docs = eval(PLAIN_DOCS)
    here = minhash_signatures(docs, num_perm=64, seed=5)
    assert np.array_equal(here, minhash_signatures(docs, num_perm=64, seed=5, workers=2, batch_bytes=2000))
    code = ("import sys; from pipelines.curation.minhash import minhash_signatures; "
            f"sys.stdout.write(minhash_signatures({PLAIN_DOCS}, num_perm=64, seed=5).tobytes().hex())")
    # another interpreter with another str-hash salt must give the same bytes
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PYTHONHASHSEED": "123"})
    assert out.stdout == here.tobytes().hex()


def test_signature_values_are_stable_across_versions():
    # pinned values: a change here invalidates every stored signature, so make it on purpose only
    sig = minhash_signatures(["the quick brown fox jumps over the lazy dog"], num_perm=8, seed=1)
    assert sig[0].tolist() == GOLDEN


GOLDEN = [1575159148, 1575159148, 3693776269, 934340163, 2794476086, 4141836976, 934340163, 934340163]


def test_empty_and_short_texts():
    sigs = minhash_signatures(["", "!!!", "word", "two words", "three words here"], num_perm=32)
    assert (sigs[0] == EMPTY).all() and (sigs[1] == EMPTY).all()
    assert not (sigs[2:] == EMPTY).any()  # densified: every bin of a non-empty text has a value
    assert minhash_signatures([], num_perm=16).shape == (0, 16)


@pytest.mark.parametrize("probe_steps", [32, 1])
def test_densification_copies_the_first_filled_bin_in_probe_order(monkeypatch, probe_steps):
    monkeypatch.setattr(mh, "_PROBE_STEPS", probe_steps)  # 1: most bins fall through to the all-at-once path
    rng = np.random.default_rng(0)
    num_perm = 64
    sig = rng.integers(0, 1000, (200, num_perm)).astype(np.uint32)
    for i, fill in enumerate(np.linspace(0, 1, 200)):
        sig[i, rng.random(num_perm) >= fill] = EMPTY  # from all empty to all filled
    expected = sig.copy()
    probe, _ = mh._probe_order(num_perm, 3)
    for i in range(len(sig)):
        filled = sig[i] != EMPTY
        if filled.any():
            for j in np.flatnonzero(~filled):
                expected[i, j] = sig[i, next(b for b in probe[j] if filled[b])]
    mh._densify(sig, 3)
    assert np.array_equal(sig, expected)


def test_estimated_jaccard_is_close_to_the_true_jaccard():
    rng = np.random.default_rng(1)
    errors = []
    for trial in range(40):
        words = [f"u{i}" for i in rng.choice(10**6, 2000, replace=False)]
        shared = int(rng.integers(100, 1000))
        a, b = words[:1000], words[:shared] + words[1000:2000 - shared]
        true = shared / (2000 - shared)
        assert jaccard(shingle_set(" ".join(a), ngram=1), shingle_set(" ".join(b), ngram=1)) == pytest.approx(true)
        s = minhash_signatures([" ".join(a), " ".join(b)], num_perm=256, ngram=1, seed=trial)
        errors.append(estimated_jaccard(s[0], s[1]) - true)
    errors = np.array(errors)
    assert np.abs(errors).max() < 0.12  # about 4 standard deviations at 256 bins
    assert abs(errors.mean()) < 0.02  # no bias
    assert np.sqrt((errors ** 2).mean()) < 0.045


def test_exact_jaccard_of_word_trigrams():
    a = shingle_set("a b c d e")  # {abc, bcd, cde}
    b = shingle_set("A, b; c d X")  # {abc, bcd, cdx}
    assert jaccard(a, b) == pytest.approx(2 / 4)
    assert jaccard(shingle_set(""), shingle_set("")) == 1.0
