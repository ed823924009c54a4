"""The in-process inference engine: model loading, continuous batching, prefix KV cache, drafts, packed GEMM.

- ``model``: ``LocalModel``, the ``local`` backend (loading, chat template, tool calls, sampling).
- ``batching``: ``ContinuousBatcher``, many threads' greedy requests through one running batch.
- ``decoder``: ``BatchDecoder``, the model side of that batch: rows join, step and leave.
- ``prefix_cache``: ``PrefixCache``, KV states of earlier turns reused by token prefix.
- ``cache_layers``: transformers cache layers over the preallocated KV buffers.
- ``drafts``: ``PromptLookup``, draft tokens from a row's own history.
- ``attention``: ``rows_attention``, multi-token steps reading the cache once (registered with transformers).
- ``packed``: ``PackedLinears``, decoding-step products through MKL's packed GEMM.
"""
