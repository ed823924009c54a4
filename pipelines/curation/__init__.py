"""Curation machinery shared by the ``curate`` stage: exact and MinHash near-duplicate detection.

>>> from pipelines.curation.minhash import near_duplicate_clusters
>>> near_duplicate_clusters(["a", "b", "c"], ["the cat sat on the mat", "The cat sat on the mat!", "dogs bark"])
[['a', 'b']]
"""
