from pathlib import Path

import pytest

from pipelines.core.errors import ParamsError
from pipelines.core.params import load_params, parse_params

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.base_model.source == "embedded"
    assert params.llm.roles.teacher in params.llm.models


def _error(data) -> str:
    with pytest.raises(ParamsError) as info:
        parse_params(data)
    return str(info.value)


def test_wrong_choice_names_dotted_key_and_allowed_values():
    msg = _error({"base_model": {"dtype": "int8"}})
    assert "base_model.dtype" in msg and "'float32'" in msg and "int8" in msg


def test_unknown_key_lists_allowed_keys():
    msg = _error({"base_model": {"sorce": "x"}})
    assert "base_model.sorce: unknown key" in msg and "source" in msg


def test_unknown_key_inside_a_tagged_model_entry():
    msg = _error({"llm": {"models": {"embedded": {"backend": "local", "temprature": 0.1}}}})
    assert "llm.models.embedded.temprature: unknown key" in msg and "sampling" in msg


def test_out_of_range_value():
    msg = _error({"llm": {"models": {"embedded": {"backend": "local", "sampling": {"temperature": 5}}}}})
    assert "llm.models.embedded.sampling.temperature" in msg and "less than or equal to 2" in msg


def test_wrong_type():
    msg = _error({"llm": {"models": {"embedded": {"backend": "local", "max_context": "big"}}}})
    assert "llm.models.embedded.max_context" in msg


def test_role_must_name_a_defined_model():
    msg = _error({"llm": {"roles": {"teacher": "gpt-x"}}})
    assert "roles.teacher" in msg and "gpt-x" in msg and "embedded" in msg


def test_unknown_group():
    assert "nonsense: unknown key" in _error({"nonsense": {}})


def test_invalid_yaml_names_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("base_model:\n  source: embedded\n  dtype: [float32\n")
    with pytest.raises(ParamsError) as info:
        load_params(bad)
    msg = str(info.value)
    assert str(bad) in msg and (":3" in msg or ":4" in msg) and "not valid YAML" in msg


def test_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
