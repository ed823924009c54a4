"""``local`` backend: transformers in-process on a local Hugging Face directory.

Tool calls are rendered through the directory's chat template and parsed with :mod:`pipelines.llm.toolcalls`
in the format of the model's family (:func:`pipelines.llm.families.family_of`: ``models/base/`` carries the
project's tool-aware ChatML template unless ``base_model.chat_template`` chose another family). Greedy requests from
concurrent episodes share one continuously running batch (:mod:`pipelines.llm.local.batching`), each on
top of the KV states of its earlier turns (:mod:`pipelines.llm.local.decoder`,
:mod:`pipelines.llm.local.prefix_cache`); sampled requests run alone from scratch.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from pipelines.core.errors import ModelError
from pipelines.llm.base import ContextLengthError, Reply, Usage, assistant_message
from pipelines.llm.local.batching import ContinuousBatcher, GenerationRequest
from pipelines.llm.model_dir import check_model_dir
from pipelines.llm.families import family_of, stop_token_ids
from pipelines.llm.toolcalls import call_prefix, close_string, parse_assistant_text


log = logging.getLogger("pipelines.llm.local.model")
_LOAD_LOCK = threading.RLock()


class LocalModel:
    """A causal LM loaded lazily from ``path`` (plus an optional PEFT adapter).

    Sampling keys: ``max_tokens``, ``min_tokens`` (the end-of-turn token is held back until that many
    new tokens, as vLLM's ``min_tokens``), ``temperature`` (0 = greedy), ``top_p``, ``seed``, and
    ``tool_choice``: ``"auto"`` (default), ``"required"`` (the turn starts inside a tool call), or
    ``{"type": "function", "function": {"name": N}}`` (the turn calls N), and
    ``parallel_tool_calls`` (default True; False ends the turn after its first tool call), as in the
    OpenAI API.
    """

    def __init__(self, path: str | Path, *, name: str = "local", adapter: str | Path | None = None,
                 max_context: int = 8192, device: str = "auto", sampling: dict[str, Any] | None = None,
                 batching: bool = True, max_batch: int = 8, kv_cache_mb: int = 2048, packed_gemm: bool = True,
                 draft_tokens: int = 3):
        self.name = name
        self.path = Path(path)
        self.adapter = Path(adapter) if adapter else None
        self.max_context = max_context
        self.device = device
        self.defaults = dict(sampling or {})
        self._lock = threading.Lock()  # one generate at a time on this model
        self.batching = batching  # greedy requests from concurrent episodes share a running batch
        self.max_batch = max_batch
        self.kv_cache_mb = kv_cache_mb  # states of earlier turns kept for the next (0 = off); LRU beyond this
        self.packed_gemm = packed_gemm  # decoding steps through MKL's packed GEMM on CPU (a second copy of the weights)
        self.draft_tokens = draft_tokens  # prompt-lookup draft tokens verified per row and step (0 = off)
        self._batcher: ContinuousBatcher | None = None  # set by load() where the model allows it
        self._model = None
        self._tokenizer = None

    # ------------------------------------------------------------------ loading
    def load(self) -> "LocalModel":
        """Load tokenizer and weights now (otherwise the first chat() does); safe from many threads."""
        if self._model is not None:
            return self
        # concurrent first calls must not load twice, nor race through transformers' lazy imports
        with _LOAD_LOCK:
            if self._model is None:
                self._load()
        return self

    def _load(self) -> None:
        check_model_dir(self.path)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.path)
            model = AutoModelForCausalLM.from_pretrained(self.path, dtype="auto")
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt config, weights (SafetensorError) or tokenizer
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: cannot load the model ({first}); rebuild it with `dvc repro base_model` "
                             "or fix the model path in params.yaml") from None
        if not self._tokenizer.chat_template:
            raise ModelError(f"{self.path}: the tokenizer has no chat template; rebuild it with `dvc repro base_model`")
        if self.adapter:
            if not (self.adapter / "adapter_config.json").exists():
                raise ModelError(f"{self.adapter}: no adapter_config.json; is this a PEFT adapter directory?")
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.adapter)
        self._device = device
        self.family = family_of(self._tokenizer)
        self._stops = stop_token_ids(self._tokenizer, self.family)
        if not self._stops:
            raise ModelError(f"{self.path}: the tokenizer has no end-of-turn token of the {self.family} format; "
                             "rebuild it with `dvc repro base_model`")
        self._eos = self._stops[0]
        self._close = close_string(self.family)
        pad = self._tokenizer.pad_token_id
        self._pad = pad if pad is not None else self._eos
        from pipelines.llm.local.decoder import BatchDecoder, supported
        from pipelines.llm.local.prefix_cache import PrefixCache

        model = model.to(device).eval()
        self._fast_path = supported(model.config)
        if not self._fast_path:
            log.info("%s: layer types other than full attention; concurrent requests are generated one by one",
                     self.path)
        elif self.batching:
            from transformers import StopStringCriteria

            from pipelines.llm.local import packed

            packed_linears = None
            step_rows = self.max_batch * (1 + self.draft_tokens)  # the most tokens a decoding step carries
            if self.packed_gemm and step_rows > 1 and packed.available(device):
                packed_linears = packed.PackedLinears(model, step_rows)
                log.info("%s: %d weight matrices packed for %d-row decoding steps (%.0f MB)", self.path,
                         packed_linears.modules, step_rows, packed_linears.packed_bytes / 2**20)
            decoder = BatchDecoder(
                model, eos=self._stops, slots=self.max_batch, device=device, packed=packed_linears,
                draft_tokens=self.draft_tokens,
                cache=PrefixCache(self.kv_cache_mb * 2**20) if self.kv_cache_mb > 0 else None,
                stop_criteria=StopStringCriteria(self._tokenizer, [self._close]) if self._close else None)
            self._batcher = ContinuousBatcher(decoder, max_batch=self.max_batch, lock=self._lock)
        self._model = model  # last: other threads take a set model as "loaded"

    @property
    def tokenizer(self):
        self.load()
        return self._tokenizer

    # ------------------------------------------------------------------ generation
    def _gen_kwargs(self, max_new: int, min_new: int, stop_at_close: bool) -> dict[str, Any]:
        eos = self._stops if len(self._stops) > 1 else self._eos
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "eos_token_id": eos, "pad_token_id": self._pad}
        if stop_at_close:
            kwargs.update(stop_strings=[self._close], tokenizer=self._tokenizer)
        if min_new:
            kwargs["min_new_tokens"] = min_new
        return kwargs

    def _generate_alone(self, ids, max_new: int, min_new: int, stop_at_close: bool, temperature: float,
                        opts: dict) -> list[int]:
        import torch

        kwargs = self._gen_kwargs(max_new, min_new, stop_at_close)
        kwargs["do_sample"] = temperature > 0
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=float(opts.get("top_p", 1.0)))
        with self._lock, torch.inference_mode():
            if temperature > 0 and opts.get("seed") is not None:
                torch.manual_seed(int(opts["seed"]))
            out = self._model.generate(ids.to(self._device), attention_mask=torch.ones_like(ids).to(self._device),
                                       **kwargs)
        return out[0, ids.shape[1]:].tolist()

    # ------------------------------------------------------------------ chat
    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        """The exact prompt text the model sees, ending with the assistant header."""
        return self.tokenizer.apply_chat_template(
            messages, tools=tools or None, add_generation_prompt=True, tokenize=False
        )

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **sampling: Any) -> Reply:
        self.load()
        opts = {**self.defaults, **{k: v for k, v in sampling.items() if v is not None}}
        max_new = int(opts.get("max_tokens", 256))
        min_new = int(opts.get("min_tokens", 0))
        temperature = float(opts.get("temperature", 0.0))
        prefix = _prefill(opts.get("tool_choice", "auto"), tools, self.family)
        prompt = self.render(messages, tools) + prefix
        ids = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        if ids.shape[1] + max_new > self.max_context:
            raise ContextLengthError(
                f"prompt of {ids.shape[1]} tokens + {max_new} new exceeds the context of {self.max_context}"
            )
        stop_at_close = bool(tools) and opts.get("parallel_tool_calls", True) is False and self._close is not None
        started = time.perf_counter()
        batch_size, cached = 1, 0
        if temperature == 0 and self._batcher is not None and self._fast_path:
            request = self._batcher.submit(GenerationRequest(ids[0].tolist(), max_new, stop_strings=stop_at_close,
                                                             min_new=min_new))
            new_ids, batch_size, cached = request.result, request.batch_size, request.cached
        else:
            new_ids = self._generate_alone(ids, max_new, min_new, stop_at_close, temperature, opts)
        text = prefix + self._tokenizer.decode(new_ids, skip_special_tokens=False)
        hit_eos = (len(new_ids) > 0 and int(new_ids[-1]) in self._stops) or (
            self._close is not None and text.rstrip().endswith(self._close))
        usage = Usage(prompt_tokens=int(ids.shape[1]), completion_tokens=len(new_ids), cached_tokens=cached,
                      seconds=time.perf_counter() - started, batch_size=batch_size)
        parsed = parse_assistant_text(text, self.family, tools)
        message = assistant_message(parsed.content, parsed.tool_calls, parsed.reasoning)
        return Reply(message=message, usage=usage, format_error=parsed.error,
                     finish_reason="stop" if hit_eos else "length", raw=text)


def _prefill(tool_choice: Any, tools: list[dict[str, Any]] | None, family: str = "chatml") -> str:
    """Text forced at the start of the turn to honour ``tool_choice`` (needs tools), in ``family``'s format."""
    if not tools or tool_choice in (None, "auto", "none"):
        return ""
    if tool_choice == "required":
        return call_prefix(family)
    if isinstance(tool_choice, dict):
        name = tool_choice.get("function", {}).get("name")
        if name:
            return call_prefix(family, name)
    raise ModelError(f"tool_choice {tool_choice!r} is not understood; use 'auto', 'required' or a function name")
