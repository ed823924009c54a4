"""Params of mine_prs and pr_queries."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from pipelines.core.config import Strict
from pipelines.prs.github_defaults import DEFAULT_API, REPO_NAME

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
