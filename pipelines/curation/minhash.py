"""MinHash signatures of texts, their shingle sets and Jaccard similarities, vectorised with numpy.

How a text becomes a signature (deterministic for a seed, in any process, on any machine):

1. Normalise: case fold; every run of non-word characters (punctuation, symbols, whitespace,
   ``_``) separates words. ASCII text is normalised on its bytes with a lookup table; other text
   goes through :func:`normalize_text` first. Both give exactly the words of ``normalize_text``.
2. Word hashes: a polynomial hash of each word's bytes modulo 2**64, for a whole batch of
   documents at once from one cumulative sum (``C[end] - C[start]``, rescaled by an inverse
   power of the base), then mixed with splitmix64's finaliser.
3. Shingles: ``ngram`` consecutive word hashes combined with fixed odd multipliers; a document
   with fewer than ``ngram`` words is a single shingle, one without words has none.
4. Signature: one-permutation hashing. Each shingle hash, mixed with the seed, picks one of
   ``num_perm`` bins with its high 32 bits and offers its low 32 bits as that bin's value; a
   bin keeps its minimum. Empty bins (short documents) copy the first non-empty bin in a fixed,
   seeded probe order (Shrivastava's "optimal densification"), so equal bins still estimate the
   Jaccard similarity. A document without words has every bin at :data:`EMPTY`.

The share of equal bins between two signatures estimates the Jaccard similarity of the two
shingle sets; :mod:`pipelines.curation.lsh` bands signatures to find candidate pairs cheaply,
verifies them and clusters the survivors.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "EMPTY", "estimated_jaccard", "jaccard", "minhash_signatures", "normalize_text", "normalized_digest",
    "process_pool", "shingle_set",
]

EMPTY = np.uint32(0xFFFFFFFF)
"""Signature value of a bin that no shingle reached (only documents without words keep it)."""

_U64 = np.uint64
_MASK64 = (1 << 64) - 1
_NON_WORD = re.compile(r"[\W_]+")
_WORD_BASE = 0x100000001B3  # odd, so its powers are invertible modulo 2**64
_SEGMENT_BYTES = 1 << 19  # word hashing works on at most this many bytes at once (keeps power tables small)
_BATCH_BYTES = 1 << 18  # texts per numpy batch: enough to amortise calls, small enough to stay in cache
_PROBE_STEPS = 32  # densification probes step by step this far, then ranks all filled bins at once


def normalize_text(text: str) -> str:
    """Case-fold ``text`` and replace every run of non-word characters by one space, trimmed.

    Word characters are Unicode letters and digits; punctuation, symbols, whitespace and ``_``
    only separate words: ``normalize_text("Hello,  World_42!") == "hello world 42"``.
    """
    return _NON_WORD.sub(" ", text.casefold()).strip()


def normalized_digest(text: str) -> bytes:
    """A 16-byte digest of ``normalize_text(text)``: a compact key for exact-duplicate grouping."""
    return hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=16).digest()


def _byte_table() -> bytes:
    """Byte map for ``bytes.translate``: ASCII letters and digits lower-cased, other ASCII to 0."""
    table = bytearray(256)
    for b in range(256):
        if b >= 0x80:
            table[b] = b  # part of a non-ASCII character; such text went through normalize_text already
        elif chr(b).isalnum():
            table[b] = ord(chr(b).lower())
    return bytes(table)


_BYTE_TABLE = _byte_table()


def _mix_int(x: int) -> int:
    """splitmix64's finaliser on one Python int (for constants)."""
    x &= _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array (returns a new array)."""
    x = x ^ (x >> _U64(30))
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def _seed_key(seed: int, purpose: int) -> int:
    """A 64-bit key derived from the user's seed, different for each internal use."""
    return _mix_int(_mix_int(seed) ^ (0x9E3779B97F4A7C15 * (purpose + 1)))


def _power_table(base: int, n: int) -> np.ndarray:
    """``base**i mod 2**64`` for ``i < n``, by repeated doubling of the filled prefix."""
    out = np.empty(n, np.uint64)
    out[0] = 1
    filled = 1
    while filled < n:
        step = min(filled, n - filled)
        np.multiply(out[:step], _U64(pow(base, filled, 1 << 64)), out=out[filled:filled + step])
        filled += step
    return out


@functools.lru_cache(maxsize=4)
def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Powers of the word-hash base and of its inverse modulo 2**64, ``size`` of each."""
    return _power_table(_WORD_BASE, size), _power_table(pow(_WORD_BASE, -1, 1 << 64), size)


_thread_local = threading.local()


def _workspace(n: int) -> np.ndarray:
    """A reused uint64 scratch array of length ``n`` (per thread): fresh big arrays cost page faults."""
    buf = getattr(_thread_local, "workspace", None)
    if buf is None or buf.size < n:
        buf = _thread_local.workspace = np.empty(max(n, 1 << 17), np.uint64)
    return buf[:n]


def _word_hashes_segment(buf: bytes, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and mixed hashes of the words in ``buf[start:stop]`` (0 bytes separate words)."""
    data = np.frombuffer(buf, np.uint8, count=stop - start, offset=start)
    n = data.size
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.uint64)
    is_word = data != 0
    edge = np.empty(n + 1, bool)
    edge[0], edge[n] = is_word[0], is_word[n - 1]
    np.not_equal(is_word[1:], is_word[:-1], out=edge[1:n])
    bounds = np.flatnonzero(edge)
    starts, ends = bounds[0::2], bounds[1::2]
    powers, inverse = _powers(max(_SEGMENT_BYTES, 1 << (n - 1).bit_length()))
    prefix = _workspace(n + 1)
    prefix[0] = 0
    np.multiply(data, powers[:n], out=prefix[1:])
    np.cumsum(prefix[1:], out=prefix[1:])
    # sum of b[p] * base**p over a word, shifted down by base**-start: the word's own polynomial hash
    hashes = (prefix[ends] - prefix[starts]) * inverse[starts]
    return starts + start, _mix(hashes)


def _word_hashes(buf: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and mixed hashes of all words of a translated buffer, segment by segment."""
    if len(buf) <= _SEGMENT_BYTES:
        return _word_hashes_segment(buf, 0, len(buf))
    starts, hashes = [], []
    pos = 0
    while pos < len(buf):
        stop = min(pos + _SEGMENT_BYTES, len(buf))
        if stop < len(buf):
            cut = buf.rfind(b"\0", pos + 1, stop)
            if cut < 0:  # one word longer than a segment: end the segment after it
                cut = buf.find(b"\0", stop)
            stop = len(buf) if cut < 0 else cut
        s, h = _word_hashes_segment(buf, pos, stop)
        starts.append(s)
        hashes.append(h)
        pos = stop
    return np.concatenate(starts), np.concatenate(hashes)


@functools.lru_cache(maxsize=16)
def _ngram_multipliers(ngram: int) -> tuple[np.uint64, ...]:
    """Fixed odd multipliers, one per position in an n-gram (odd: no information is lost)."""
    return tuple(_U64(_mix_int(0xD6E8FEB86659FD93 * (k + 1)) | 1) for k in range(ngram))


def _encode(text: str) -> bytes:
    """UTF-8 bytes of ``text`` for the byte table; non-ASCII text is normalised in Python first."""
    return text.encode("ascii") if text.isascii() else normalize_text(text).encode("utf-8")


def _shingle_hashes(texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Shingle hashes of a batch of texts (concatenated in order) and how many each text has."""
    if not texts:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    parts = [_encode(t) for t in texts]
    buf = b"\0".join(parts).translate(_BYTE_TABLE)
    doc_starts = np.zeros(len(parts), np.int64)
    np.cumsum(np.fromiter(map(len, parts[:-1]), np.int64, len(parts) - 1) + 1, out=doc_starts[1:])
    word_starts, word_hashes = _word_hashes(buf)
    first_word = np.searchsorted(word_starts, doc_starts)
    n_words = np.diff(first_word, append=word_starts.size)
    return _combine_ngrams(word_hashes, first_word, n_words, ngram)


def _combine_ngrams(word_hashes: np.ndarray, first_word: np.ndarray, n_words: np.ndarray,
                    ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Word n-gram hashes per document from word hashes; a short document is one shingle."""
    counts = np.where(n_words >= ngram, n_words - ngram + 1, np.minimum(n_words, 1))
    offsets = np.zeros(counts.size + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    first = np.repeat(first_word - offsets[:-1], counts) + np.arange(offsets[-1])
    mult = _ngram_multipliers(ngram)
    n_all = word_hashes.size
    # every n-gram of the whole batch from shifted slices (cheaper than gathers); pad for short tails
    padded = np.concatenate([word_hashes, np.zeros(ngram - 1, np.uint64)])
    combined = padded[:n_all] * mult[0]
    for k in range(1, ngram):
        combined += padded[k:k + n_all] * mult[k]
    shingles = combined[first] if first.size else np.empty(0, np.uint64)
    short = np.flatnonzero((n_words > 0) & (n_words < ngram))
    if short.size:  # these shingles must not take words of the next document
        value = word_hashes[first_word[short]] * mult[0]
        for k in range(1, ngram - 1):
            has = n_words[short] > k
            value[has] += word_hashes[first_word[short][has] + k] * mult[k]
        shingles[offsets[short]] = value
    return shingles, counts


@functools.lru_cache(maxsize=8)
def _probe_order(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """For each bin, all bins in a seeded order (where an empty bin looks for a value to copy),
    and the inverse: ``rank[j, b]`` is the step at which bin ``j`` probes bin ``b``."""
    cells = np.arange(num_perm * num_perm, dtype=np.uint64).reshape(num_perm, num_perm)
    probe = np.argsort(_mix(cells ^ _U64(_seed_key(seed, 2))), axis=1).astype(np.intp)
    rank = np.argsort(probe, axis=1).astype(np.int32)
    return probe, rank


def _densify(sig: np.ndarray, seed: int) -> None:
    """Fill each empty bin of rows that have some non-empty bin from the first filled bin it probes, in place."""
    num_perm = sig.shape[1]
    empty = sig == EMPTY
    n_empty = empty.sum(axis=1)
    probe, rank = _probe_order(num_perm, seed)
    # rows at least a quarter filled: a few probe steps settle nearly every empty bin
    dense = np.flatnonzero((n_empty > 0) & (4 * (num_perm - n_empty) >= num_perm))
    if dense.size:
        row, bin_ = np.nonzero(empty[dense])
        row = dense[row]
        source = np.empty(row.size, np.intp)
        pending = np.arange(row.size)
        for step in range(min(num_perm, _PROBE_STEPS)):
            cand = probe[bin_[pending], step]
            hit = ~empty[row[pending], cand]
            source[pending[hit]] = cand[hit]
            pending = pending[~hit]
            if pending.size == 0:
                break
        if pending.size:
            unlucky, where = np.unique(row[pending], return_inverse=True)
            source[pending] = _first_filled_probe(~empty[unlucky], rank)[where.ravel(), bin_[pending]]
        sig[row, bin_] = sig[row, source]
    # sparse rows (short texts): rank their few filled bins for every bin at once
    sparse = np.flatnonzero((4 * (num_perm - n_empty) < num_perm) & (n_empty < num_perm))
    if sparse.size:
        block = sig[sparse]
        first = _first_filled_probe(~empty[sparse], rank)
        sig[sparse] = np.where(empty[sparse], np.take_along_axis(block, first, axis=1), block)


def _first_filled_probe(filled: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """For rows of a filled-bin mask, each bin's first filled bin in its probe order, ``(rows, bins)``."""
    num_perm = rank.shape[0]
    steps_to = np.ascontiguousarray(rank.T)  # steps_to[b, j]: when bin j probes bin b
    n_filled = filled.sum(axis=1)
    order = np.argsort(n_filled, kind="stable")  # rows with as many filled bins together: few wasted passes
    out = np.empty(filled.shape, np.intp)
    for lo in range(0, order.size, 4096):
        chunk = order[lo:lo + 4096]
        idx = np.argsort(~filled[chunk], axis=1, kind="stable")  # each row's filled bins first
        best_step = np.full((chunk.size, num_perm), num_perm, np.int32)
        best_bin = np.zeros((chunk.size, num_perm), np.intp)
        for q in range(int(n_filled[chunk].max())):  # one pass per filled bin: keep the earliest probed
            candidate = idx[:, q]
            step = steps_to[candidate]
            step[q >= n_filled[chunk]] = num_perm  # this row has fewer filled bins
            better = step < best_step
            np.minimum(step, best_step, out=best_step)
            best_bin = np.where(better, candidate[:, None], best_bin)
        out[chunk] = best_bin
    return out


def _signatures_from_shingles(shingles: np.ndarray, counts: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """One-permutation MinHash signatures, ``(len(counts), num_perm)`` uint32, from shingle hashes."""
    n_docs = counts.size
    x = _mix(shingles ^ _U64(_seed_key(seed, 1)))
    bins = ((x >> _U64(32)) * _U64(num_perm)) >> _U64(32)  # fair range reduction without a modulo
    cells = bins.astype(np.int64)
    cells += np.repeat(np.arange(n_docs, dtype=np.int64) * num_perm, counts)
    sig = np.full(n_docs * num_perm, EMPTY, np.uint32)
    np.minimum.at(sig, cells, x.astype(np.uint32))  # the cast keeps the low 32 bits
    sig = sig.reshape(n_docs, num_perm)
    _densify(sig, seed)
    return sig


def _check_params(num_perm: int, ngram: int) -> None:
    if not 1 <= num_perm <= 4096:
        raise ValueError(f"num_perm must be between 1 and 4096, got {num_perm}")
    if ngram < 1:
        raise ValueError(f"ngram must be at least 1, got {ngram}")


def _signature_batch(texts: Sequence[str], num_perm: int, ngram: int, seed: int) -> np.ndarray:
    """Signatures of one batch (a top-level function so that worker processes can run it)."""
    shingles, counts = _shingle_hashes(texts, ngram)
    return _signatures_from_shingles(shingles, counts, num_perm, seed)


def _batches(texts: Iterable[str], batch_bytes: int) -> Iterator[list[str]]:
    """Group texts into lists of about ``batch_bytes`` characters."""
    batch: list[str] = []
    size = 0
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be str, got {type(text).__name__}")
        batch.append(text)
        size += len(text) + 1
        if size >= batch_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def process_pool(workers: int, initializer: Any = None) -> Any:
    """A ``multiprocessing`` pool of ``workers`` processes, forked when that is safe.

    Fork starts fastest and re-imports nothing, but copies locks held by other threads; so it is
    used only while this process runs a single thread, forkserver (or spawn) otherwise.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        method = "fork"
    else:
        method = "forkserver" if "forkserver" in methods else "spawn"
    return multiprocessing.get_context(method).Pool(workers, initializer=initializer)


def minhash_signatures(texts: Iterable[str], *, num_perm: int = 128, ngram: int = 3, seed: int = 1,
                       workers: int = 1, batch_bytes: int = _BATCH_BYTES) -> np.ndarray:
    """MinHash signatures of ``texts``: a ``(len(texts), num_perm)`` uint32 array, row i for text i.

    Shingles are word ``ngram``-grams of ``normalize_text(text)``. The result depends only on the
    texts, ``num_perm``, ``ngram`` and ``seed`` (not on batching, ``workers`` or the process).
    ``workers > 1`` hashes batches of about ``batch_bytes`` characters in a process pool (the texts
    are then all read before hashing starts).
    """
    _check_params(num_perm, ngram)
    batches = _batches(texts, batch_bytes)
    if workers <= 1:
        parts = [_signature_batch(b, num_perm, ngram, seed) for b in batches]
    else:
        with process_pool(workers) as pool:
            parts = pool.starmap(_signature_batch, ((b, num_perm, ngram, seed) for b in batches), chunksize=1)
    if not parts:
        return np.empty((0, num_perm), np.uint32)
    return np.concatenate(parts)


def shingle_set(text: str, *, ngram: int = 3) -> np.ndarray:
    """The shingle set of ``text`` as sorted unique 64-bit hashes of its normalised word n-grams.

    Two texts' sets compare exactly up to 64-bit hash collisions; see :func:`jaccard`.
    """
    _check_params(1, ngram)
    shingles, _ = _shingle_hashes([text], ngram)
    return np.unique(shingles)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique arrays such as :func:`shingle_set` returns (1.0 if both empty)."""
    if a.size == 0 and b.size == 0:
        return 1.0
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """Share of equal bins between signatures: a float for two rows, an array for two stacks of rows."""
    share = np.count_nonzero(np.asarray(a) == np.asarray(b), axis=-1) / np.shape(a)[-1]
    return float(share) if np.ndim(share) == 0 else share
