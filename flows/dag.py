"""The pipeline's stages in DAG order, read from DVC itself (never from a list kept here).

    stages = read_stages(Path("."))           # [StageInfo("base_model", "dvc.yaml:base_model", ...), ...]
    chosen = select(stages, ["curate"])       # validated, still in DAG order
    select(stages, ["collect"])               # collect_shard@0..N-1 and collect (the merge)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StageInfo:
    """One pipeline stage as DVC declares it.

    ``name``: DVC's address (``collect``; ``sub/dvc.yaml:x`` for a stage outside the root dvc.yaml).
    ``target``: what to hand ``dvc repro`` with the project root as the current directory.
    ``summary_files``: JSON files whose top-level counts summarise a run: the stage's metrics files and a
    ``report.json`` inside each other output (read only if it exists).
    """

    name: str
    target: str
    summary_files: tuple[str, ...] = ()


def read_stages(root: Path) -> list[StageInfo]:
    """Every pipeline stage of the DVC project at ``root``, upstream first, ties in dvc.yaml order."""
    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    with Repo(str(root)) as repo:
        declared = {stage: i for i, stage in enumerate(repo.index.stages)}
        graph = repo.index.graph  # edges run from a stage to the stages it depends on
        pipeline = [stage for stage in graph.nodes if isinstance(stage, PipelineStage)]
        upstream_first = graph.reverse(copy=False).subgraph(pipeline)
        ordered = nx.lexicographical_topological_sort(upstream_first, key=lambda stage: declared.get(stage, 0))
        return [_info(stage, root) for stage in ordered]


def _info(stage, root: Path) -> StageInfo:
    dvcfile = os.path.relpath(stage.dvcfile.path, root)
    summary: list[str] = []
    for out in stage.outs:
        if out.plot:
            continue
        rel = os.path.relpath(out.fs_path, root)
        if out.metric:
            candidate = rel
        elif not Path(rel).suffix:  # a directory output may carry its own report.json
            candidate = f"{rel}/report.json"
        else:
            continue
        if candidate.endswith(".json") and candidate not in summary:
            summary.append(candidate)
    # stage.addressing is relative to the current directory; names here are relative to the root
    name = stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"
    return StageInfo(name=name, target=f"{dvcfile}:{stage.name}", summary_files=tuple(summary))


def select(stages: list[StageInfo], names: list[str] | None) -> list[StageInfo]:
    """The stages named in ``names`` (all when None), in DAG order; unknown names raise ValueError. A matrix
    stage's name (``collect_shard``) selects every item of it (``collect_shard@0``, ...), and the name of a
    sharded stage's merge (``collect``) selects its shards too."""
    if names is None:
        return list(stages)
    known = {stage.name for stage in stages} | {stage.name.split("@", 1)[0] for stage in stages}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(map(repr, unknown))}; dvc.yaml defines: "
                         f"{', '.join(stage.name for stage in stages)}")
    wanted = set(names) | {f"{name}_shard" for name in names}  # a sharded stage (collect) with its shards
    return [stage for stage in stages if stage.name in wanted or stage.name.split("@", 1)[0] in wanted]
