"""Which shard runs a piece of work: a function of its key and the shard count only.

    shard_of(key, 4)        # 0..3

Jump consistent hashing (Lamping and Veach) of the key's SHA-256: the same key lands in the same shard
whatever else is planned, shards get about equal shares, and one more shard moves only what it takes.
"""

from __future__ import annotations

import hashlib


def shard_of(key: str, shards: int) -> int:
    """The shard (0..shards-1) of the episode with ``key``: jump consistent hash of its SHA-256."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    state = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    bucket, jump = -1, 0
    while jump < shards:  # Lamping and Veach's jump hash, with a 64-bit linear congruential step
        bucket = jump
        state = (state * 2862933555777941757 + 1) % (1 << 64)
        jump = int((bucket + 1) * ((1 << 31) / ((state >> 33) + 1)))
    return bucket
