"""Typed view of ``params.yaml``: one group per stage, validated before a stage does any work.

Each group's model lives beside the code that reads it (``pipelines/<package>/config.py``); this
module puts them together, reads the file and turns validation errors into one line per problem.

No stage reads YAML itself. ``load_params()`` returns a :class:`Params`; a bad value raises
:class:`ParamsError` naming the dotted key, the problem and (where it helps) the allowed values.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError, model_validator

from pipelines.collection.config import CollectParams
from pipelines.core.config import Strict
from pipelines.core.errors import ParamsError
from pipelines.core.paths import params_file
from pipelines.curation.config import CurateParams
from pipelines.evaluation.config import EvalParams
from pipelines.llm.config import BaseModelParams, LLMParams, ModelParams
from pipelines.prs.config import MinePRsParams, PRQueriesParams
from pipelines.synthesis.config import SynthesizeParams
from pipelines.training.config import SFTParams


class Params(Strict):
    """All of ``params.yaml``. Later stages add their own group here."""

    base_model: BaseModelParams = BaseModelParams()
    llm: LLMParams = LLMParams()
    mine_prs: MinePRsParams = MinePRsParams()
    pr_queries: PRQueriesParams = PRQueriesParams()
    synthesize: SynthesizeParams = SynthesizeParams()
    collect: CollectParams = CollectParams()
    curate: CurateParams = CurateParams()
    sft: SFTParams = SFTParams()
    eval: EvalParams = EvalParams()

    @model_validator(mode="after")
    def _teachers_are_defined(self) -> "Params":
        for i, teacher in enumerate(self.collect.teachers):
            if teacher.model != "replay" and teacher.model not in self.llm.models:
                raise ValueError(f"collect.teachers.{i}.model names {teacher.model!r}, which is neither 'replay' "
                                 f"nor a model in llm.models ({', '.join(sorted(self.llm.models))})")
        for i, entry in enumerate(self.eval.models):
            spec = self.llm.models.get(entry.model)
            if spec is None:
                raise ValueError(f"eval.models.{i}.model names {entry.model!r}, which is not a model in llm.models "
                                 f"({', '.join(sorted(self.llm.models))})")
            if entry.adapter and spec.backend == "openai":
                raise ValueError(f"eval.models.{i}.adapter is a local folder, which the openai backend of "
                                 f"{entry.model!r} cannot load; serve it by name (vllm serve BASE --enable-lora "
                                 f"--lora-modules {entry.name}={entry.adapter}) and set served_adapter: "
                                 f"{entry.name} instead")
            if entry.adapter and spec.backend != "local":
                raise ValueError(f"eval.models.{i}.adapter needs a local-backend model; {entry.model!r} is "
                                 f"{spec.backend}")
            if entry.served_adapter and spec.backend != "openai":
                raise ValueError(f"eval.models.{i}.served_adapter names an adapter on an OpenAI-compatible server; "
                                 f"{entry.model!r} is {spec.backend}, not openai (a local folder goes in adapter)")
        return self

    def group(self, name: str) -> dict[str, Any]:
        """One group as plain JSON-able data (what a stage logs as its params)."""
        return getattr(self, name).model_dump(mode="json")


def speed_only_keys(path: str) -> set[str]:
    """Keys marked speed-only in the params model at ``path``: a group name (``collect``) or
    ``llm.models.<backend>`` (``llm.models.local``). They are left out of the stages' DVC params deps."""
    if path.startswith("llm.models."):
        backend = path.rsplit(".", 1)[1]
        members = get_args(get_args(ModelParams)[0])
        model = next((m for m in members if get_args(m.model_fields["backend"].annotation) == (backend,)), None)
    else:
        info = Params.model_fields.get(path)
        model = info.annotation if info else None
    if model is None:
        return set()
    return {name for name, f in model.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("speed_only")}


def params_hash(data: Any) -> str:
    """A short, stable digest of JSON-able params, for tagging runs."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def load_params(path: str | Path | None = None) -> Params:
    """Read and validate ``params.yaml`` (default: the repo's); raise ParamsError on any problem."""
    path = Path(path) if path else params_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found; copy the repository's params.yaml or set LIMI_PARAMS") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ParamsError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of stage groups at the top level")
    return parse_params(data, source=str(path))


def parse_params(data: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate already-loaded params; errors name ``source`` and the dotted key."""
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_describe(err)}" for err in exc.errors()]
        raise ParamsError("\n".join(lines)) from None


def _describe(err: dict[str, Any]) -> str:
    loc = _clean_loc(err["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(list(err["loc"][:-1]))
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{key}: unknown key{hint}"
    got = err.get("input")
    got_text = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
    return f"{key}: {err['msg']}{got_text}"


def _clean_loc(loc: tuple) -> list:
    """Drop the discriminator tag pydantic inserts after a dict key of a tagged union."""
    out: list = []
    for i, part in enumerate(loc):
        if i >= 3 and loc[0] == "llm" and loc[1] == "models" and i == 3 and part in ("local", "openai", "scripted"):
            continue
        out.append(part)
    return out


def _allowed_keys(loc: list) -> list[str]:
    """Field names of the model at ``loc`` (best effort; empty when it cannot be resolved)."""
    model: Any = Params
    for part in loc:
        if get_origin(model) is Union:  # a tagged union: this part is the tag
            tagged = [m for m in get_args(model) if _tag_of(m) == part]
            if not tagged:
                return []
            model = tagged[0]
            continue
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            if field is None:
                return []
            model = field.annotation
        elif get_origin(model) is dict:
            model = get_args(model)[1]
        else:
            return []
        model = _unwrap(model)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(model.model_fields)
    return []


def _tag_of(model: Any) -> Any:
    field = getattr(model, "model_fields", {}).get("backend")
    args = get_args(field.annotation) if field else ()
    return args[0] if args else None


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) is Union:
        members = [a for a in get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return tp
