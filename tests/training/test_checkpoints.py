"""Resume picks the newest checkpoint the Trainer finished writing."""

from __future__ import annotations

import json

from pipelines.training.checkpoints import last_checkpoint


def _checkpoint(root, step, state):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    if state is not None:
        (folder / "trainer_state.json").write_text(state)
    return folder


def test_a_checkpoint_cut_off_by_a_kill_is_passed_over(tmp_path):
    assert last_checkpoint(tmp_path / "none") is None
    _checkpoint(tmp_path, 2, json.dumps({"global_step": 2}))
    good = _checkpoint(tmp_path, 4, json.dumps({"global_step": 4}))
    _checkpoint(tmp_path, 6, None)                    # killed before the state was written
    _checkpoint(tmp_path, 10, '{"global_step": 1')    # killed while writing it (step 10 sorts after 6 as a number)
    assert last_checkpoint(tmp_path) == good


def test_no_complete_checkpoint_means_a_fresh_start(tmp_path):
    _checkpoint(tmp_path, 3, None)
    assert last_checkpoint(tmp_path) is None
