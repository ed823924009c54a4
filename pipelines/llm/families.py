"""Model families: each one's chat format for training, tool-call syntax, stop tokens and loss-mask rule.

=========  ===========================  =================================================================
family     training template            turn ends with
=========  ===========================  =================================================================
chatml     ``chatml_tools.jinja``       ``<|im_end|>`` (the project's ChatML, tool results in ``tool`` turns)
qwen3      ``qwen3_tools.jinja``        ``<|im_end|>`` (tool results inside a ``user`` turn, ``<think>``)
glm45      ``glm45_tools.jinja``        the next role token (``<|user|>``, ``<|observation|>``): no end token
llama31    ``llama31_tools.jinja``      ``<|eot_id|>`` (``<|eom_id|>`` accepted)
=========  ===========================  =================================================================

A model directory records its family in its chat template: the family templates open with a
``chat-family: NAME`` comment, and the project's ChatML template is recognised by its text. A template of
the model's own (``base_model.chat_template: keep``) is read by the family its tokenizer's special tokens
show (:func:`detect_family`).
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from pathlib import Path

TEMPLATES = Path(__file__).parent.parent / "templates"


@dataclass(frozen=True)
class Family:
    name: str
    template: str  # file name under pipelines/templates
    required: tuple[str, ...]  # tokens the tokenizer must have for the template to make sense
    stops: tuple[str, ...]  # tokens that end an assistant turn when generating
    hands_back: bool = False  # no end-of-turn token: the next role token (or end_of_text) closes a turn
    end_of_text: str | None = None  # what closes a final assistant turn in training, for hands_back families


FAMILIES: dict[str, Family] = {
    "chatml": Family("chatml", "chatml_tools.jinja", ("<|im_end|>",), ("<|im_end|>",)),
    "qwen3": Family("qwen3", "qwen3_tools.jinja", ("<|im_start|>", "<|im_end|>"), ("<|im_end|>",)),
    "glm45": Family("glm45", "glm45_tools.jinja",
                    ("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"),
                    ("<|user|>", "<|observation|>", "<|endoftext|>"), hands_back=True, end_of_text="<|endoftext|>"),
    "llama31": Family("llama31", "llama31_tools.jinja",
                      ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
                      ("<|eot_id|>", "<|eom_id|>")),
}
DEFAULT = "chatml"
# base_model.chat_template: 'tools' is the project's ChatML template (= chatml), 'keep' the source's own
# template, 'auto' the template of the family the tokenizer shows
TEMPLATE_CHOICES = ("tools", "keep", "auto", *FAMILIES)
_MARKER = re.compile(r"\{#-?\s*chat-family:\s*(\w+)")


def template_text(family: str) -> str:
    """The training template (with generation marks) of ``family``."""
    return (TEMPLATES / FAMILIES[family].template).read_text(encoding="utf-8")


def _vocab_has(tokenizer, vocab: dict[str, int] | None = None):
    vocab = vocab if vocab is not None else tokenizer.get_vocab()
    return lambda token: token in vocab


def detect_family(tokenizer) -> str | None:
    """The family the tokenizer's special tokens show, or None: ``[gMASK]`` with ``<|observation|>`` is
    GLM-4.5, ``<|start_header_id|>`` with ``<|eot_id|>`` Llama 3.1, ``<|im_start|>`` with ``<think>`` or
    ``<tool_response>`` as single tokens Qwen3, other ``<|im_start|>``/``<|im_end|>`` vocabularies ChatML."""
    has = _vocab_has(tokenizer)
    if has("[gMASK]") and has("<|observation|>"):
        return "glm45"
    if has("<|start_header_id|>") and has("<|eot_id|>"):
        return "llama31"
    if has("<|im_start|>") and has("<|im_end|>"):
        return "qwen3" if has("<think>") or has("<tool_response>") else "chatml"
    return None


def template_family(template: str | None) -> str | None:
    """The family a chat template text declares (or is, for the project's ChatML template), else None."""
    if not template:
        return None
    m = _MARKER.match(template)
    if m and m.group(1) in FAMILIES:
        return m.group(1)
    if template == template_text("chatml"):
        return "chatml"
    return None


_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def family_of(tokenizer) -> str:
    """The family a tokenizer's model is trained and parsed as: what its template declares, else what its
    special tokens show, else ChatML (the project's own format)."""
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    try:
        cached = _CACHE.get(tokenizer)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached and cached[0] == template:
        return cached[1]
    family = template_family(template) or detect_family(tokenizer) or DEFAULT
    try:
        _CACHE[tokenizer] = (template, family)
    except TypeError:
        pass
    return family


def missing_tokens(tokenizer, family: str) -> list[str]:
    """The tokens ``family``'s template needs that the tokenizer lacks."""
    has = _vocab_has(tokenizer)
    return [t for t in FAMILIES[family].required if not has(t)]


def stop_token_ids(tokenizer, family: str) -> list[int]:
    """Ids of the tokens that end an assistant turn of ``family``, those the tokenizer has."""
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in FAMILIES[family].stops if t in vocab]
