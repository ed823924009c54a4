"""Internals of transformers, torch and DVC that the project relies on, checked against the installed versions.

Each entry names the internal, the package it comes from and the code that uses it. After an upgrade a
missing one fails here in one line ("transformers 5.3.0 no longer has ...") instead of deep inside a
stage, or silently: the local engine switches packed GEMM and drafts off by itself when their internals
are missing, which costs speed and nothing else. The list lives here because no code reads it: each user
imports its internal where it needs it (``pipelines/core/dvc_child.py`` may import only the stdlib and DVC).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest


@dataclass(frozen=True)
class Internal:
    package: str  # the distribution, as pip names it
    name: str  # the internal, dotted from the package's top module
    detail: str  # the part of it the code relies on
    used_by: str  # where the project relies on it
    check: Callable[[], object]  # raises (or fails an assert) when the internal is gone or changed


def attr(dotted: str):
    """``module.attr.attr`` imported and looked up; ImportError or AttributeError when gone."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def takes(dotted: str, *names: str) -> Callable[[], None]:
    """A check that ``dotted`` is a callable accepting the keyword parameters ``names``."""
    def check() -> None:
        params = inspect.signature(attr(dotted)).parameters
        missing = [n for n in names if n not in params]
        assert not missing, f"{dotted} takes no parameter {', '.join(missing)}"
    return check


def has(dotted: str, *members: str) -> Callable[[], None]:
    """A check that ``dotted`` exists and has every attribute in ``members``."""
    def check() -> None:
        obj = attr(dotted)
        missing = [m for m in members if not hasattr(obj, m)]
        assert not missing, f"{dotted} has no {', '.join(missing)}"
    return check


def assert_in(part: str, text: str) -> None:
    assert part in text, f"no {part!r} in it"


def _dynamic_layer() -> None:
    layer_class = attr("transformers.cache_utils.DynamicLayer")
    has("transformers.cache_utils.DynamicLayer", "lazy_initialization", "update", "get_seq_length", "crop")()
    layer = layer_class()  # BufferLayer and RowsLayer call super().__init__() without arguments
    assert hasattr(layer, "keys") and hasattr(layer, "values") and hasattr(layer, "is_initialized")


def _dynamic_cache_layers() -> None:
    cache = attr("transformers.DynamicCache")()
    assert isinstance(cache.layers, list), "DynamicCache().layers is not a list"


def _registered_attention() -> None:
    from transformers import AttentionInterface

    from pipelines.llm.local.attention import ROWS_ATTENTION, rows_attention

    assert AttentionInterface()[ROWS_ATTENTION] is rows_attention, "a registered function is not found by name"


def _tiny_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def _attention_read_per_forward() -> None:
    import torch
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from pipelines.llm.local.attention import swapped_attention

    calls = []

    def probe(module, query, key, value, attention_mask, **kwargs):
        calls.append(query.shape)
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("limi_internals_probe", probe)
    model = _tiny_llama()
    assert model.config._attn_implementation == "sdpa", (
        f"the default attention is {model.config._attn_implementation!r}; drafts run only under 'sdpa'")
    with torch.inference_mode(), swapped_attention(model.config, "limi_internals_probe"):
        model(input_ids=torch.tensor([[1, 2, 3]]))
    assert calls, "setting config._attn_implementation between forward passes no longer swaps the attention"
    assert model.config._attn_implementation == "sdpa"


def _text_config() -> None:
    config = _tiny_llama().config
    assert config.get_text_config(decoder=True) is not None


def _mkl_packed_gemm() -> None:
    import torch

    if not torch.backends.mkl.is_available():
        pytest.skip("this torch build has no MKL: packed GEMM is off by design")
    for op in ("_mkl_linear", "_mkl_reorder_linear_weight"):
        assert hasattr(torch.ops.mkl, op), f"torch.ops.mkl.{op} is gone"


def _sdpa_keywords() -> None:
    import torch

    query = key = value = torch.zeros(1, 1, 2, 4)
    mask = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0, scale=0.5)


def _stage_failure_wording() -> None:
    import re

    from dvc.stage.exceptions import StageCmdFailedError

    message = str(StageCmdFailedError("false", 3))
    found = re.search(r"exited with (-?\d+)", message)  # the pattern pipelines/core/dvc_child.py reads the status with
    assert found and found.group(1) == "3", f"a failed stage now reads {message!r}"


def _exception_classes() -> None:
    from dvc.exceptions import DvcException

    for dotted in ("dvc.exceptions.ReproductionError", "dvc.lock.LockError",
                   "dvc.stage.exceptions.StageCmdFailedError"):
        assert issubclass(attr(dotted), DvcException), f"{dotted} is no longer a DvcException"


def _log_wording() -> None:
    import dvc

    from pipelines.core.dvc_child import DVC_EVENTS

    sources = "".join(p.read_text(encoding="utf-8") for p in Path(dvc.__file__).parent.rglob("*.py"))
    gone = [message for message in DVC_EVENTS if f'"{message}"' not in sources]
    assert not gone, f"DVC no longer logs {gone} (pipelines/core/dvc_child.py DVC_EVENTS)"


TRANSFORMERS = [
    Internal("transformers", "cache_utils.DynamicLayer", "subclassed: lazy_initialization, update, get_seq_length, "
             "crop, keys, values", "pipelines/llm/local/cache_layers.py", _dynamic_layer),
    Internal("transformers", "DynamicCache.layers", "a list the decoder fills with its own layers",
             "pipelines/llm/local/cache_layers.py and decoder.py", _dynamic_cache_layers),
    Internal("transformers", "AttentionInterface.register", "a function registered by name is found by name",
             "pipelines/llm/local/attention.py", _registered_attention),
    Internal("transformers", "integrations.sdpa_attention.sdpa_attention_forward",
             "module, query, key, value, attention_mask, dropout=, scaling=", "pipelines/llm/local/attention.py",
             takes("transformers.integrations.sdpa_attention.sdpa_attention_forward", "module", "query", "key",
                   "value", "attention_mask", "dropout", "scaling")),
    Internal("transformers", "config._attn_implementation", "'sdpa' by default on CPU, read at every forward pass",
             "pipelines/llm/local/attention.py (swapped_attention) and decoder.py (drafts)",
             _attention_read_per_forward),
    Internal("transformers", "PretrainedConfig.get_text_config", "decoder=True", "pipelines/llm/local/decoder.py",
             _text_config),
    Internal("transformers", "LlamaForCausalLM.forward", "cache=, position_ids=, use_cache=, logits_to_keep=",
             "pipelines/llm/local/decoder.py",
             takes("transformers.LlamaForCausalLM.forward", "input_ids", "attention_mask", "position_ids", "cache",
                   "use_cache", "logits_to_keep")),
    Internal("transformers", "StopStringCriteria", "built from (tokenizer, stop_strings), called as (input_ids, "
             "scores)", "pipelines/llm/local/model.py and decoder.py",
             lambda: (takes("transformers.StopStringCriteria.__init__", "tokenizer", "stop_strings")(),
                      takes("transformers.StopStringCriteria.__call__", "input_ids", "scores")())),
    Internal("transformers", "DataCollatorWithFlattening", "return_position_ids=, separator_id=", "pipelines/sft.py",
             takes("transformers.DataCollatorWithFlattening.__init__", "return_position_ids", "separator_id")),
    Internal("transformers", "trainer_callback.PrinterCallback", "removed from the Trainer's callbacks",
             "pipelines/sft.py", lambda: attr("transformers.trainer_callback.PrinterCallback")),
]

TORCH = [
    Internal("torch", "ops.mkl._mkl_linear", "with ops.mkl._mkl_reorder_linear_weight: MKL's packed GEMM",
             "pipelines/llm/local/packed.py (packed_gemm turns itself off without them)", _mkl_packed_gemm),
    Internal("torch", "nn.functional.scaled_dot_product_attention", "attn_mask=, dropout_p=, scale=",
             "pipelines/llm/local/attention.py", _sdpa_keywords),
]

DVC = [
    Internal("dvc", "repo.Repo.reproduce", "targets, single_item=; returns the stages it ran", "pipelines/core/dvc_child.py",
             takes("dvc.repo.Repo.reproduce", "targets", "single_item")),
    Internal("dvc", "repo.experiments.run.run", "targets=, params=, tmp_dir=, behind repo.experiments.run",
             "pipelines/core/dvc_child.py", takes("dvc.repo.experiments.run.run", "targets", "params", "tmp_dir")),
    Internal("dvc", "exceptions.ReproductionError", "with lock.LockError and stage.exceptions.StageCmdFailedError, "
             "a DvcException", "pipelines/core/dvc_child.py", _exception_classes),
    Internal("dvc", "stage.exceptions.StageCmdFailedError", "its message says 'exited with N'", "pipelines/core/dvc_child.py",
             _stage_failure_wording),
    Internal("dvc", "log messages", "for a stage that runs, is skipped or is restored from the run cache",
             "pipelines/core/dvc_child.py (DVC_EVENTS)", _log_wording),
    Internal("dvc", "repo.Repo.reproduce pull=", "pull=True: missing deps and run-cache outputs from the remote",
             "pipelines/core/dvc_child.py (shard, restore)",
             lambda: assert_in('kwargs.get("pull"', inspect.getsource(attr("dvc.repo.reproduce.reproduce")))),
    Internal("dvc", "repo.Repo.push run_cache=", "targets=, run_cache=: outputs plus the run cache",
             "pipelines/core/dvc_child.py (shard, push)", takes("dvc.repo.push.push", "targets", "run_cache")),
    Internal("dvc", "stage.cache.StageCache", "pull(remote); _load(stage) and _create_stage(entry, wdir=): the lookup "
             "StageCache.restore starts with", "pipelines/core/dvc_child.py (_check_restorable)",
             lambda: (takes("dvc.stage.cache.StageCache.pull", "remote")(),
                      takes("dvc.stage.cache.StageCache._load", "stage")(),
                      takes("dvc.stage.cache.StageCache._create_stage", "cache", "wdir")())),
    Internal("dvc", "stage.Stage", "save_deps(), changed(), get_used_objs(), outs_cached()",
             "pipelines/core/dvc_child.py (_check_restorable)",
             has("dvc.stage.Stage", "save_deps", "changed", "get_used_objs", "outs_cached")),
    Internal("dvc", "stage.PipelineStage", "the class of dvc.yaml stages", "flows/dag.py",
             lambda: attr("dvc.stage.PipelineStage")),
    Internal("dvc", "repo.experiments.celery_queue", "status(), a list of dicts with name and status",
             "pipelines/tools/sweep/",
             lambda: (has("dvc.repo.experiments.Experiments", "celery_queue")(),
                      has("dvc.repo.experiments.queue.celery.LocalCeleryQueue", "status")())),
    Internal("dvc-data", "hashfile.build.build", "odb, path, fs, name, dry_run=; with hashfile.db.HashFileDB",
             "pipelines/core/tracking.py (dvc_md5)",
             lambda: (takes("dvc_data.hashfile.build.build", "odb", "path", "fs", "name", "dry_run")(),
                      attr("dvc_data.hashfile.db.HashFileDB"))),
    Internal("dvc-objects", "fs.local.LocalFileSystem", "with fs.memory.MemoryFileSystem",
             "pipelines/core/tracking.py (dvc_md5)",
             lambda: (attr("dvc_objects.fs.local.LocalFileSystem"), attr("dvc_objects.fs.memory.MemoryFileSystem"))),
]


def gone(internal: Internal, detail: str) -> str:
    """The failure line: package, installed version, the internal, who uses it, and what to do."""
    try:
        version = importlib.metadata.version(internal.package)
    except importlib.metadata.PackageNotFoundError:
        version = "(not installed)"
    return (f"{internal.package} {version} no longer has {internal.name} ({internal.detail}), which "
            f"{internal.used_by} relies on [{detail}]; pin {internal.package} to a version that has it, "
            "or adapt the code that uses it")


@pytest.mark.parametrize("internal", TRANSFORMERS + TORCH + DVC, ids=lambda i: f"{i.package}:{i.name}")
def test_relied_on_internal_is_there(internal: Internal):
    try:
        internal.check()
    except pytest.skip.Exception:
        raise
    except Exception as exc:  # noqa: BLE001 - any way of being gone is reported the same way
        pytest.fail(gone(internal, f"{type(exc).__name__}: {exc}"), pytrace=False)


def test_dvc_objects_have_what_the_runner_dag_and_sweep_read(tmp_path, monkeypatch):
    """A real three-stage project: the attributes flows/dag.py and pipelines/tools/sweep/ read on stages,
    outputs and dependencies, what ``reproduce`` returns, the log records pipelines/core/dvc_child.py counts, and
    the cause a failed stage command leaves on the error."""
    import logging

    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.stage.exceptions import StageCmdFailedError

    from pipelines.core.dvc_child import StageEvents

    internal = Internal("dvc", "repo.index", "stages and graph; the attributes of stages, outputs and "
                        "dependencies; what reproduce returns and raises",
                        "pipelines/core/dvc_child.py, flows/dag.py and pipelines/tools/sweep/", lambda: None)
    monkeypatch.chdir(tmp_path)  # stage addresses are relative to the current directory
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  make:\n    cmd: echo 1 > a.txt\n    outs: [a.txt]\n"
        "  use:\n    cmd: cp a.txt b.json\n    deps: [a.txt]\n    metrics: [{b.json: {cache: false}}]\n"
        "  broken:\n    cmd: exit 3\n")
    events, dvc_log = StageEvents(), logging.getLogger("dvc")
    level = dvc_log.level
    dvc_log.addHandler(events)
    dvc_log.setLevel(logging.INFO)  # as pipelines/core/dvc_child.py does
    try:
        Repo.init(str(tmp_path)).close()
        with Repo(str(tmp_path)) as repo:
            try:
                stages = {s.addressing: s for s in repo.index.stages}
                use = stages["use"]
                for obj, members in ((use, ("addressing", "name", "relpath", "outs", "deps", "dvcfile")),
                                     (use.outs[0], ("fs_path", "hash_info", "changed_cache", "changed", "plot",
                                                    "metric", "stage")),
                                     (use.deps[0], ("fs_path",))):
                    missing = [m for m in members if not hasattr(obj, m)]
                    assert not missing, f"{type(obj).__name__} has no {', '.join(missing)}"
                assert use.outs[0].metric and not use.outs[0].plot and Path(use.dvcfile.path).name == "dvc.yaml"
                assert use in repo.index.graph and stages["make"] in repo.index.graph.successors(use)
                done = repo.reproduce("use")
                assert {f"{s.relpath}:{s.name}" for s in done} == {"dvc.yaml:make", "dvc.yaml:use"}
                assert {stage for stage, kind, _ in events.events if kind == "ran"} == {"make", "use"}
                assert repo.reproduce("use", single_item=True) == []
                with pytest.raises(DvcException) as failed:
                    repo.reproduce("broken", single_item=True)
                assert isinstance(failed.value.__cause__, StageCmdFailedError), "no StageCmdFailedError as cause"
            except (AssertionError, AttributeError, TypeError, KeyError) as exc:
                pytest.fail(gone(internal, f"{type(exc).__name__}: {exc}"), pytrace=False)
    finally:
        dvc_log.removeHandler(events)
        dvc_log.setLevel(level)
