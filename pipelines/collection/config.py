"""Params of collect (the harness settings are pipelines.agent.config's)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.agent.config import HarnessParams
from pipelines.core.config import SPEED_ONLY, Strict

class TeacherAssignment(Strict):
    """One teacher and the query sources it collects on."""

    model: str = Field(description="a name from llm.models, or 'replay' (applies the task's reference solution)")
    sources: list[Literal["human", "synthetic", "pr", "drill"]] = Field(min_length=1)
    max_queries: int = Field(0, ge=0, description="at most this many queries for this teacher (0 = all)")


class CollectParams(HarnessParams):
    """Run the agent on every query and keep complete trajectories (the harness settings are HarnessParams')."""

    seeds: bool = Field(True, description="also collect on the curated seed tasks in data/seeds")
    drills: bool = Field(True, description="also collect on the drill tasks in data/drills (source drill: easy-tier "
                                           "requests made from templates, python -m pipelines.tools.drills)")
    query_files: list[str] = Field(default_factory=lambda: ["data/queries/synthetic.jsonl", "data/queries/pr.jsonl"],
                                   description="JSONL files of queries; missing files are skipped with a note")
    teachers: list[TeacherAssignment] = Field(
        default_factory=lambda: [TeacherAssignment(model="replay", sources=["human", "pr", "drill"]),
                                 TeacherAssignment(model="embedded", sources=["synthetic", "human"], max_queries=4)])
    user: Literal["simulated", "human"] = "simulated"
    user_model: bool = Field(False, description="phrase simulated feedback with llm.roles.user_simulator")
    shards: int = Field(1, ge=1, le=1024, json_schema_extra=SPEED_ONLY,
                        description="split the episodes into this many DVC stages (collect_shard@0..N-1), by a hash "
                                    "of each episode's key, merged by stage collect; after a change run "
                                    "`python -m pipelines.tools.stage_deps --write`. The merged output does not "
                                    "depend on it")
