"""The model layer: one protocol (:class:`pipelines.llm.base.ChatModel`), three backends, roles configured by name.

- ``base``: the protocol, ``Reply``, ``Usage`` and the errors backends raise.
- ``roles``: ``model_for_role`` and ``build_model``, from ``llm.models`` and ``llm.roles`` in params.yaml.
- ``openai_backend``: any OpenAI-compatible endpoint. ``scripted``: replies read from a file, for tests.
- ``local/``: transformers in-process, with continuous batching and KV-cache reuse.
- ``toolcalls``: the tool-call formats (JSON inside ``<tool_call>`` tags, and the GLM-4.5 and Llama 3.1 ones), parsed.
- ``families``: the chat formats (ChatML, Qwen3, GLM-4.5, Llama 3.1): templates, stop tokens, detection.
"""
