"""Params of synthesize."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.core.config import Strict
from pipelines.core.taxonomy import Category, Domain

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
