"""The SFT output as a loadable MLflow model, registered as ``limi-sft`` with the alias ``champion``.

:func:`register_champion` logs the SFT output (a LoRA adapter over the local base, or full fine-tuned
weights) to the eval stage's MLflow run as a pyfunc model (:mod:`pipelines.llm.sft_pyfunc`, which says
why a pyfunc and not the transformers flavour), logs the winner's eval metrics against that logged model
(so the model's page in the MLflow UI shows its scores), registers it as a new version of ``limi-sft``
tagged with the DVC md5 of the base and of the SFT output, and points the alias at that version. Then::

    import mlflow
    model = mlflow.pyfunc.load_model("models:/limi-sft@champion")
    model.predict(["Write hello.txt containing hello."])            # one generated text per prompt
    model.predict([[{"role": "user", "content": "..."}]], params={"max_new_tokens": 64})

The model holds copies of its weights (the base folder and the adapter), so it loads wherever the artifact
store can be read, without this project or ``models/``; pip requirements are written explicitly (mlflow,
torch, transformers, peft, jinja2 at the installed versions), so logging resolves no environment and reaches
no network.

Registration is a record, never an output: nothing of it goes into a DVC output, and a failure costs a
warning, not the stage.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import yaml

from pipelines.core.paths import repo_root
from pipelines.core.tracking import dvc_md5

log = logging.getLogger(__name__)

CHAMPION_MODEL = "limi-sft"
CHAMPION_ALIAS = "champion"
LOGGED_MODEL_NAME = "sft_model"
PYFUNC_CODE = Path(__file__).resolve().parents[1] / "llm" / "sft_pyfunc.py"
# The step the model is logged at in the eval run. MLflow links every metric a run holds at the model's step
# to the model; the run's own metrics (both models' scores, timings) sit at step 0, so the model gets a step
# of its own and only the metrics logged for it explicitly.
MODEL_STEP = 1


def sft_artifacts(sft_dir: Path, base_dir: Path | None) -> dict[str, str]:
    """The pyfunc's artifacts: ``base`` and ``adapter`` for a PEFT adapter, ``model`` for full weights.

    Raises ValueError (one line) when ``sft_dir`` is neither, or an adapter has no base folder.
    """
    if (sft_dir / "adapter_config.json").exists():
        if base_dir is None or not base_dir.is_dir():
            raise ValueError(f"{sft_dir} is a LoRA adapter but its base model folder {base_dir} is not there")
        # resolved: MLflow refuses an artifact folder that is a symbolic link (files linked inside are copied)
        return {"base": str(base_dir.resolve()), "adapter": str(sft_dir.resolve())}
    if (sft_dir / "config.json").exists():
        return {"model": str(sft_dir.resolve())}
    raise ValueError(f"{sft_dir}: neither a PEFT adapter (adapter_config.json) nor model weights (config.json)")


def pip_requirements(adapter: bool) -> list[str]:
    """What the pyfunc imports, pinned to the installed versions (a local label such as ``+cpu`` dropped, so
    pip can install it from PyPI); MLflow adds itself. Explicit, so MLflow infers nothing at log time."""
    names = ["torch", "transformers", "jinja2"] + (["peft"] if adapter else [])
    return [f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in names]


def locked_md5s(root: Path) -> dict[str, str]:
    """``{path: md5}`` of every stage output ``dvc.lock`` records (empty without a lock)."""
    try:
        lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return {out["path"]: out["md5"] for stage in (lock.get("stages") or {}).values()
            for out in (stage.get("outs") or []) if isinstance(out, dict) and out.get("path") and out.get("md5")}


def md5_tags(root: Path, folders: dict[str, Path | None]) -> dict[str, str]:
    """``<role>_md5`` (DVC's md5 of the folder, ``<md5>.dir``) and ``<role>_md5_from`` for each folder.

    ``dvc.lock`` is read first: when its outputs record the folder and the folder hashes the same (DVC's own
    computation), the tag is that value, ``from: dvc.lock``. A folder the lock does not record, or records
    with another md5 (the folder changed after ``dvc repro``), is tagged with its computed md5,
    ``from: computed`` (and a warning for the stale lock); one that cannot be hashed is ``unknown``.
    """
    locked = locked_md5s(root)
    tags: dict[str, str] = {}
    for role, folder in folders.items():
        if folder is None:
            continue
        try:
            rel = Path(os.path.abspath(folder)).relative_to(os.path.abspath(root)).as_posix()  # links not followed
        except ValueError:
            rel = None
        try:
            computed = dvc_md5(folder)
        except Exception as exc:  # noqa: BLE001 - a hash we cannot compute is an unknown tag, not a failure
            log.debug("cannot hash %s: %s", folder, exc)
            computed = None
        recorded = locked.get(rel) if rel else None
        if recorded and computed and recorded != computed:
            log.warning("dvc.lock records %s for %s but the folder hashes to %s; tagging the model with the latter",
                        recorded, rel, computed)
        value, source = ((recorded, "dvc.lock") if recorded and computed in (None, recorded)
                         else (computed, "computed") if computed else ("unknown", "unknown"))
        tags[f"{role}_md5"], tags[f"{role}_md5_from"] = value, source
    return tags


def log_sft_model(sft_dir: Path, base_dir: Path | None, *, max_new_tokens: int = 256,
                  tags: dict[str, str] | None = None):
    """Log the SFT output to the active MLflow run as a pyfunc model; returns MLflow's ``ModelInfo``."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec

    artifacts = sft_artifacts(sft_dir, base_dir)
    # No input schema: the input is free-form (see sft_pyfunc); the params schema lets callers pass max_new_tokens.
    signature = ModelSignature(params=ParamSchema([ParamSpec("max_new_tokens", "long", int(max_new_tokens))]))
    with warnings.catch_warnings():
        # an input example would make MLflow load the weights and generate at log time
        warnings.filterwarnings("ignore", message=".*input example was not provided", category=UserWarning)
        return mlflow.pyfunc.log_model(
            name=LOGGED_MODEL_NAME, python_model=str(PYFUNC_CODE), artifacts=artifacts,
            pip_requirements=pip_requirements("adapter" in artifacts), signature=signature,
            model_config={"max_new_tokens": int(max_new_tokens)}, tags=tags, step=MODEL_STEP)


def register_champion(run, sft_dir: Path, *, base_dir: Path | None = None, metrics: dict[str, Any] | None = None,
                      tags: dict[str, Any] | None = None, root: Path | None = None, max_new_tokens: int = 256,
                      name: str = CHAMPION_MODEL, alias: str = CHAMPION_ALIAS) -> dict[str, str] | None:
    """Log ``sft_dir`` (over ``base_dir`` when it is an adapter) to ``run`` (a :class:`StageRun`) as a pyfunc
    model with ``metrics`` logged against it, register it as a new version of ``name`` tagged with ``tags`` and
    the DVC md5s of both folders, and move ``alias`` to that version.

    Returns ``{name, version, alias, model_id, model_uri}``, or None (with a warning) when no run is recording
    or the tracking store fails: the registry is a record, and never costs the stage its outputs.
    """
    run_id = getattr(run, "run_id", None)
    if run is None or not getattr(run, "active", False) or not run_id:
        log.warning("not registering %s: no MLflow run is recording this stage", sft_dir)
        return None
    root = root or repo_root()
    try:
        import mlflow
        from mlflow import MlflowClient

        version_tags = {**{k: str(v) for k, v in (tags or {}).items()},
                        "sft_kind": "lora" if (sft_dir / "adapter_config.json").exists() else "full",
                        **md5_tags(root, {"base": base_dir, "sft": sft_dir})}
        active = mlflow.active_run()
        with nullcontext() if active and active.info.run_id == run_id else mlflow.start_run(run_id=run_id):
            info = log_sft_model(sft_dir, base_dir, max_new_tokens=max_new_tokens, tags=version_tags)
            numbers = {k: float(v) for k, v in (metrics or {}).items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if numbers:
                mlflow.log_metrics(numbers, model_id=info.model_id, step=MODEL_STEP)
        client = MlflowClient()
        version = mlflow.register_model(info.model_uri, name, tags=version_tags)
        if not client.get_registered_model(name).description:
            client.update_registered_model(name, description=(
                "LIMI SFT output (LoRA adapter over the base, or full weights) that beat the base model in the eval "
                f"stage; a pyfunc: mlflow.pyfunc.load_model('models:/{name}@{alias}').predict(['a prompt'])"))
        client.set_registered_model_alias(name, alias, version.version)
    except Exception as exc:  # a registry outage must not fail an evaluation that already ran
        log.warning("MLflow model registration failed (%s); %s is not registered",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__, sft_dir)
        return None
    registered = {"name": name, "version": str(version.version), "alias": alias, "model_id": info.model_id,
                  "model_uri": f"models:/{name}@{alias}"}
    run.set_tags({"registry.model": name, "registry.version": registered["version"],
                  "registry.model_id": info.model_id})
    log.info("registered %s as %s version %s (logged model %s), alias %s", sft_dir, name, version.version,
             info.model_id, alias)
    return registered
