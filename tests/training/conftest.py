"""The real tokenizer and chat template (of the tiny model) for the training tests."""

import pytest
from transformers import AutoTokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)
