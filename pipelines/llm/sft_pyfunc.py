"""The SFT output as an MLflow pyfunc model: the code MLflow stores with the model and runs when it is loaded.

Logged by :func:`pipelines.core.registry.log_sft_model` as a model from code: this file is copied into the
model and executed by ``mlflow.pyfunc.load_model``; it imports nothing from this project, so the model
loads wherever ``mlflow``, ``torch``, ``transformers`` and (for an adapter) ``peft`` are installed.

Why a pyfunc over the local base rather than MLflow's transformers flavour: for a PEFT model the flavour
saves only the adapter and names the base either by a Hugging Face hub id, downloaded when loaded (our
base is a local folder, ``models/base``, with no hub id), or by ``base_model_path``, a local path that
must exist on every machine that loads it; and its text-generation pipeline renders and decodes in its
own way. Here the model holds copies of the base folder and the adapter (or of the full fine-tuned
weights), loads anywhere the artifact store can be read, and renders a prompt exactly as the eval
stage's local backend does (the folder's chat template, assistant header appended), then decodes
greedily, so the registered model answers as eval measured it.

``predict`` takes, and returns one generated text for each:

- a string: a prompt, sent as one user message;
- a list of ``{"role", "content"}`` messages: one conversation;
- a dict ``{"messages": [...], "tools": [...]}`` (tools optional, OpenAI function schemas): one request;
- a list of any of these (strings, message lists, request dicts);
- a pandas DataFrame with a ``messages`` (and optional ``tools``) or a ``prompt`` column, one row each.

``params``: ``max_new_tokens`` (default from the model config, set when logged). The text is what the
model wrote up to its end-of-turn token, special tokens such as ``<tool_call>`` left in.
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel

# the end-of-turn tokens of the chat formats the project trains (pipelines.llm.families, written out here
# because this file imports nothing of the project): the first group the tokenizer has ends generation
END_OF_TURN = (("<|im_end|>",), ("<|eot_id|>", "<|eom_id|>"), ("<|user|>", "<|observation|>", "<|endoftext|>"))


def to_requests(model_input: Any) -> list[dict[str, Any]]:
    """``model_input`` in any accepted shape as a list of ``{"messages": [...], "tools": [...] | None}``."""
    if hasattr(model_input, "to_dict") and hasattr(model_input, "columns"):  # a pandas DataFrame
        rows = model_input.to_dict(orient="records")
        if "messages" not in model_input.columns and "prompt" not in model_input.columns:
            raise ValueError("a DataFrame input needs a 'messages' or a 'prompt' column; "
                             f"it has {list(model_input.columns)}")
        return [_request(row.get("messages") if "messages" in row else row["prompt"], row.get("tools"))
                for row in rows]
    model_input = _plain(model_input)
    if isinstance(model_input, (str, dict)):
        return [_request(model_input)]
    if isinstance(model_input, (list, tuple)):
        items = list(model_input)
        if items and all(isinstance(m, dict) and "role" in m for m in items):
            return [_request(items)]  # one conversation
        return [_request(item) for item in items]
    raise ValueError(f"unsupported input of type {type(model_input).__name__}: give a prompt, a list of messages, "
                     "a {'messages': [...]} request, a list of these, or a DataFrame")


def _request(item: Any, tools: Any = None) -> dict[str, Any]:
    item, tools = _plain(item), _plain(tools)
    tools = list(tools) if isinstance(tools, (list, tuple)) and tools else None  # a DataFrame's missing cell is NaN
    if isinstance(item, str):
        return {"messages": [{"role": "user", "content": item}], "tools": tools}
    if isinstance(item, dict) and "messages" in item:
        return _request(item["messages"], item.get("tools") if item.get("tools") is not None else tools)
    if isinstance(item, dict) and "role" in item:
        return _request([item], tools)
    if isinstance(item, (list, tuple)) and item and all(isinstance(m, dict) and "role" in m for m in item):
        return {"messages": list(item), "tools": tools}
    raise ValueError(f"unsupported item {str(item)[:80]!r}: a prompt string, a list of {{'role', 'content'}} "
                     "messages or a {'messages': [...]} request")


def _plain(value: Any) -> Any:
    """A numpy array (how a DataFrame cell may hold a list) as a list."""
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) else value


class SftChatModel(PythonModel):
    """Base weights plus the LoRA adapter (artifacts ``base`` and ``adapter``), or full fine-tuned weights
    (artifact ``model``); greedy generation through the chat template."""

    def load_context(self, context) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        artifacts = context.artifacts
        weights = artifacts["base"] if "adapter" in artifacts else artifacts["model"]
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(weights)
        model = AutoModelForCausalLM.from_pretrained(weights, dtype="auto")
        if "adapter" in artifacts:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, artifacts["adapter"])
        self.model = model.to(self.device).eval()
        self.stops = [self.tokenizer.eos_token_id]
        for group in END_OF_TURN:  # the format's end of turn, as the eval stage stops
            ids = [self.tokenizer.convert_tokens_to_ids(t) for t in group]
            ids = [i for i in ids if isinstance(i, int) and i != self.tokenizer.unk_token_id]
            if ids:
                self.stops = ids
                break
        self.eos = self.stops[0]
        self.max_new_tokens = int((context.model_config or {}).get("max_new_tokens", 256))

    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> list[str]:
        max_new = int((params or {}).get("max_new_tokens") or self.max_new_tokens)
        return [self.generate(r["messages"], r["tools"], max_new) for r in to_requests(model_input)]

    def generate(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, max_new: int) -> str:
        import torch

        prompt = self.tokenizer.apply_chat_template(messages, tools=tools, add_generation_prompt=True,
                                                    tokenize=False)
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(self.device)
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                                      do_sample=False, eos_token_id=self.stops if len(self.stops) > 1 else self.eos,
                                      pad_token_id=self.eos)
        new = out[0, ids.shape[1]:].tolist()
        ends = [k for k, t in enumerate(new) if t in self.stops]
        if ends:
            new = new[: ends[0]]
        return self.tokenizer.decode(new, skip_special_tokens=False)


mlflow.models.set_model(SftChatModel())
