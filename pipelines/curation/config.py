"""Params of curate: the funnel, near-duplicates, decontamination, selection."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipelines.core.config import Strict

class NearDupParams(Strict):
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard of word n-gram sets")
    num_perm: int = Field(128, ge=16, le=1024)
    ngram: int = Field(3, ge=1, le=10)


class DecontamParams(Strict):
    ngram: int = Field(13, ge=5, le=50)
    min_matches: int = Field(1, ge=1, description="shared n-grams that make a sample contaminated")
    builtin: bool = True
    easy: bool = Field(True, description="the easy eval tier (data/tasks/easy)")
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
