"""``limi run``: reproduce the pipeline, or some of its stages, with DVC deciding what is stale.

The stages run one at a time in DAG order through :func:`pipelines.core.dvc.run_dvc`, exactly as the
Prefect flow's tasks run them (``dvc repro --single-item STAGE`` in a child process that reports what
ran), so ``dvc.lock`` is the record either way and a stage whose inputs did not change is skipped.

- no stage named: every stage of ``dvc.yaml``, as ``dvc repro`` does;
- stages named: those stages and every stage upstream of them, as ``dvc repro STAGE`` does
  (``--single-item``: the named stages only; what they read must then exist).

The exit status is the failing stage command's own (2 for bad input or params, as every stage exits),
1 when DVC itself refused (an unknown input, a lock held by another run), 0 when all went through.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

from pipelines.core.dvc import StageFailed, run_dvc, stage_environment
from pipelines.core.errors import UserError


def upstream(root: Path, names: list[str]) -> set[str]:
    """``names`` and every stage they depend on, directly or through others (names as :mod:`flows.dag` gives them)."""
    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    def name_of(stage) -> str:
        dvcfile = os.path.relpath(stage.dvcfile.path, root)
        return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"

    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges run from a stage to the stages it depends on
        stages = {name_of(s): s for s in graph.nodes if isinstance(s, PipelineStage)}
        wanted = set(names)
        for name in names:
            wanted |= {name_of(s) for s in nx.descendants(graph, stages[name]) if isinstance(s, PipelineStage)}
    return wanted


def run_stages(root: Path, names: list[str], single_item: bool = False, timeout_s: float | None = None,
               log: Callable[[str], None] = print) -> int:
    """Reproduce the chosen stages in DAG order; returns the exit status ``limi run`` ends with."""
    from flows.dag import read_stages, select

    every = read_stages(root)
    try:
        chosen = select(every, names or None)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if names and not single_item:
        closure = upstream(root, [info.name for info in chosen])
        chosen = [info for info in every if info.name in closure]
    env = stage_environment({})
    log(f"limi run: {', '.join(info.name for info in chosen)}")
    for info in chosen:
        started = time.monotonic()
        try:
            outcome = run_dvc(["repro", info.target], root=root, env=env, timeout_s=timeout_s, log=log)
        except StageFailed as exc:
            # the stage's output was relayed as it came; the message's own copy of its last lines is left out
            print(f"error: stage {info.name} failed: {str(exc).split(chr(10) + '--- last lines')[0]}", file=sys.stderr)
            return exc.exit_status if exc.exit_status else 1
        except TimeoutError as exc:
            print(f"error: stage {info.name}: {exc}", file=sys.stderr)
            return 1
        status = "restored from the run cache" if info.name in outcome.restored else \
            "ran" if info.name in outcome.ran else "up to date, skipped"
        log(f"limi run: {info.name}: {status} ({time.monotonic() - started:.1f} s)")
    return 0
