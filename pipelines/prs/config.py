"""Params of mine_prs and pr_queries."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import Field, model_validator

from pipelines.core.config import Strict
from pipelines.prs.github_defaults import DEFAULT_API, REPO_NAME

class PRSource(Strict):
    """One place to mine: a GitHub repository, a local clone or a dump of API objects."""

    kind: Literal["github", "git", "dump"]
    repo: str = Field(".", description="owner/name for github; for git a path (relative to the project root) to a "
                      "clone or to a git bundle file")
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


# The values LIMI's released code and paper used (``pr_queries.preset: limi``); keys set beside the preset win.
LIMI_PRESET: dict[str, Any] = {
    "max_patch_tokens": 1200, "single_file": True, "drop_docs_only": True, "drop_markdown": True,
    "earlier_share": 0.5, "per_repo_sample": 1, "sample_seed": 42, "modify_hint": True,
    "install": {"enabled": True, "probability": 0.4, "seed": 42},
}
PRESETS: dict[str, dict[str, Any]] = {"limi": LIMI_PRESET}


class InstallSentence(Strict):
    """LIMI's sentence on installing environments, appended to a drawn share of the queries.

    Each PR draws from its own generator (seeded by ``seed`` and the PR's key), so whether a query gets
    the sentence, and which one, does not depend on the other PRs or their order.
    """

    enabled: bool = Field(False, description="append the sentence to a drawn share of the queries")
    probability: float = Field(0.4, ge=0.0, le=1.0, description="chance that a query gets a sentence at all")
    allow_share: float = Field(0.5, ge=0.0, le=1.0,
                               description="of the queries that get one, the share that get `allow` "
                               "(the rest get `forbid`)")
    seed: int = Field(42, description="seed of the draws")
    allow: str = Field("You may install any packages or tools you need to get this working.", min_length=1,
                       description="the sentence that allows installing")
    forbid: str = Field("Do not install any new packages or tools; work with what the environment already has.",
                        min_length=1, description="the sentence that forbids installing")


class PRTestsParams(Strict):
    """The PR's own tests as its verifier (:mod:`pipelines.prs.verification`): how they are found and run."""

    enabled: bool = Field(True, description="run the tests of PRs that change test files to find FAIL_TO_PASS "
                          "tests; false: every PR task is verified by the judged comparison with its gold patch")
    pytest: str = Field("pytest==9.2.0", min_length=1, description="the pytest the task environment installs when "
                        "the repository does not name pytest among its declared dependencies")
    sandbox: Literal["bwrap", "none"] = Field("bwrap", description="where the repository's tests run when they "
                                              "are looked at (none: unisolated, on this machine)")
    timeout_s: float = Field(120.0, gt=0, description="longest run of a PR's tests, here and when verifying")
    memory_mb: int = Field(1024, ge=64, description="writable memory per process while the tests are looked at "
                           "(episodes are verified under collect.memory_mb)")
    on_env_error: Literal["fail", "judge"] = Field(
        "fail", description="when a task environment cannot be built (pip cannot install the declared "
        "dependencies): fail the stage with pip's reason, or verify that PR by the judged comparison")


class PRJudgeParams(Strict):
    """The judged comparison with the gold patch, for PR tasks without a FAIL_TO_PASS test."""

    pass_threshold: float = Field(0.7, ge=0.0, le=1.0, description="the judge's score (0-10, as a share) at or "
                                  "above which the change counts as doing what the gold patch does")


class PRQueriesParams(Strict):
    """LIMI's PR-to-query path: filters, then the teacher writes the request, then LIMI's additions to it.

    ``preset: limi`` fills every key of :data:`LIMI_PRESET` that the group does not set itself.
    """

    preset: Literal["limi"] | None = Field(
        None, description="limi: the paper's filters and query additions for every key this group leaves unset")
    tokenizer: str | None = Field(
        "models/base", description="tokenizer directory (relative to the project root) that counts patch tokens; "
        "default the student's base model; null = about 4 characters a token")
    max_patch_tokens: int = Field(3000, ge=50, description="drop PRs whose unified diff is longer, in tokens")
    drop_docs_only: bool = Field(True, description="drop PRs whose every file is documentation "
                                 "(Markdown, reStructuredText, text, AsciiDoc, or under docs/)")
    drop_markdown: bool = Field(False, description="drop PRs that touch any Markdown file (LIMI)")
    single_file: bool = Field(False, description="keep only PRs that change exactly one file")
    cutoff: date | None = Field(None, description="drop PRs merged before this day (the teacher's training cutoff)")
    earlier_share: float = Field(1.0, gt=0.0, le=1.0, description="keep this earliest share of each repository's "
                                 "mined PRs by creation date (LIMI: 0.5; 1.0 = all)")
    per_repo_sample: int = Field(0, ge=0, description="draw at most this many PRs per repository at random from "
                                 "those that pass the filters (LIMI: 1; 0 = no draw)")
    sample_seed: int = Field(42, description="seed of the per-repository draw")
    per_repo_cap: int = Field(50, ge=0, description="at most this many PRs per repository, the first in order "
                              "(0 = no cap)")
    modify_hint: bool = Field(False, description='append "You only need to modify <files>." with the PR\'s files')
    install: InstallSentence = Field(default_factory=InstallSentence,
                                     description="LIMI's sentence allowing or forbidding installing environments")
    attempts: int = Field(2, ge=1, le=10, description="teacher tries per PR before it is skipped")
    max_tokens: int = Field(256, ge=32, description="longest teacher answer (the request and file lists)")
    fallback: Literal["skip", "template"] = Field(
        "template", description="when the teacher fails: skip the PR, or compose a plain request from title and body")
    tests: PRTestsParams = Field(default_factory=PRTestsParams,
                                 description="the PR's own tests as the verifier (FAIL_TO_PASS, PASS_TO_PASS)")
    judge: PRJudgeParams = Field(default_factory=PRJudgeParams,
                                 description="the judged comparison with the gold patch when no test fails before "
                                 "and passes after")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Fill the preset's values under the keys the group leaves unset (``install`` merged key by key)."""
        preset = PRESETS.get(data.get("preset")) if isinstance(data, dict) and isinstance(data.get("preset"), str) \
            else None
        if preset is None:
            return data  # no preset, or an unknown one (the field's own check names the allowed values)
        merged = {**preset, **data}
        if isinstance(data.get("install"), dict):
            merged["install"] = {**preset.get("install", {}), **data["install"]}
        if merged == data:  # a preset beside a full group changes nothing: surely not what was meant
            raise ValueError(f"preset: {data['preset']} has no effect: the group writes every key it sets "
                             f"({', '.join(sorted(preset))}); leave out those the preset should set")
        return merged
