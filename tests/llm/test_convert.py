"""Converting a model source into a Hugging Face directory: the bad-input paths, each one line, nothing left behind."""

import pytest

from pipelines.core.errors import ModelError
from pipelines.llm.config import BaseModelParams
from pipelines.llm.convert import build_base_model


def _fails(params: BaseModelParams, out, match: str):
    with pytest.raises(ModelError, match=match) as info:
        build_base_model(params, out, root=out.parent)
    assert "\n" not in str(info.value)
    assert not out.exists() and not list(out.parent.glob(".base.*"))
    return str(info.value)


def test_missing_gguf(tmp_path):
    _fails(BaseModelParams(source=str(tmp_path / "absent.gguf")), tmp_path / "base", "GGUF file not found")


def test_corrupt_gguf(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    _fails(BaseModelParams(source=str(bad)), tmp_path / "base", "corrupt GGUF")
    bad.write_bytes(b"not a model at all")
    _fails(BaseModelParams(source=str(bad)), tmp_path / "base", "not a GGUF file")


def test_directory_without_tokenizer(tmp_path, base_model_dir):
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text((base_model_dir / "config.json").read_text())
    _fails(BaseModelParams(source=str(src)), tmp_path / "base", "no tokenizer")


def test_failure_keeps_previous_output(tmp_path):
    out = tmp_path / "base"
    out.mkdir()
    (out / "keep.txt").write_text("previous")
    with pytest.raises(ModelError):
        build_base_model(BaseModelParams(source=str(tmp_path / "absent.gguf")), out, root=tmp_path)
    assert (out / "keep.txt").read_text() == "previous"
