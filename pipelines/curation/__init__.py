"""Curation machinery of the ``curate`` stage.

``funnel``    the selection funnel: schema and verification filters, dedup, length and tool-type filters, selection
``decontam``  n-gram decontamination against the eval tasks
``minhash``   MinHash signatures, shingle sets and Jaccard similarities of texts
``lsh``       banded LSH over signatures, near and exact duplicate clusters, union-find

>>> from pipelines.curation.lsh import near_duplicate_clusters
>>> near_duplicate_clusters(["a", "b", "c"], ["the cat sat on the mat", "The cat sat on the mat!", "dogs bark"])
[['a', 'b']]
"""
