"""The in-process inference engine: model loading, continuous batching, prefix KV cache, drafts, packed GEMM."""
