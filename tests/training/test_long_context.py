"""Long-context training: chunked loss and checkpointing in a real run, checkpointing by length, packing by
position ids, flex attention, the 128k limit, the accelerate configs, LIMI's eval sampling."""

import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, DataCollatorWithFlattening

from pipelines.core.errors import ParamsError, UserError
from pipelines.core.params import parse_params
from pipelines.training import model as model_module
from pipelines.training.config import SFTParams
from pipelines.training.data import IGNORE, encode_sample
from pipelines.training.model import attention, load_model, longest_batch, use_checkpointing
from pipelines.training.trainer import train
from tests.conftest import REPO
from tests.training.samples import sample


def test_chunked_loss_and_checkpointing_train_like_the_plain_path(tmp_path, tokenizer, tiny_model_dir):
    samples = [encode_sample(tokenizer, sample(i, words=10 + 15 * i)) for i in range(3)]
    common = dict(method="full", max_steps=3, learning_rate=3e-3, warmup_ratio=0.0, save_steps=100, bf16="false")
    plain = SFTParams(**common, loss_chunk_tokens=0, gradient_checkpointing="false")
    chunked = SFTParams(**common, loss_chunk_tokens=8, checkpointing_from_tokens=128)
    runs = {}
    for name, params in (("plain", plain), ("chunked", chunked)):
        runs[name] = train(samples, tiny_model_dir, tmp_path / name, params, checkpoints=tmp_path / f"{name}-ckpt",
                           plots=tmp_path / f"{name}-plots")
    assert (runs["plain"]["gradient_checkpointing"], runs["chunked"]["gradient_checkpointing"]) == (False, True)
    losses = {n: [float(r.split(",")[1]) for r in (tmp_path / f"{n}-plots" / "loss.csv").read_text().splitlines()[1:]]
              for n in runs}
    assert len(losses["plain"]) == 3 and losses["chunked"] == pytest.approx(losses["plain"], abs=1e-5)
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "plain").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "chunked").state_dict()
    for name, weight in a.items():  # three optimizer steps on the same gradients
        torch.testing.assert_close(b[name], weight, atol=1e-5, rtol=1e-4, msg=name)


def test_checkpointing_auto_turns_on_by_length_on_a_cpu():
    auto = SFTParams(checkpointing_from_tokens=16384)
    assert not torch.cuda.is_available()  # these tests run on CPU machines
    assert longest_batch([100, 9000, 8000, 300], 1) == 9000 and longest_batch([100, 9000, 8000, 300], 2) == 17000
    assert not use_checkpointing(auto, 9000) and use_checkpointing(auto, 17000)
    assert not use_checkpointing(SFTParams(), SFTParams().max_length)  # the default pipeline stays as it was
    assert use_checkpointing(SFTParams(), SFTParams().max_length + 1)
    assert use_checkpointing(SFTParams(gradient_checkpointing="true"), 10)
    assert not use_checkpointing(SFTParams(gradient_checkpointing="false"), 10**6)


def test_packed_samples_stay_apart_by_position_ids(tokenizer, tiny_model_dir):
    encoded = [encode_sample(tokenizer, sample(i, words=5 + 10 * i)) for i in range(3)]
    packed = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)(encoded)
    assert "attention_mask" not in packed and packed["position_ids"][0, len(encoded[0]["input_ids"])] == 0
    for attn in ("sdpa", "eager"):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attn).eval()
        with torch.no_grad():
            together = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits
            start = 0
            for sample_ids in (e["input_ids"] for e in encoded):
                alone = model(input_ids=torch.tensor([sample_ids]), use_cache=False).logits
                torch.testing.assert_close(together[:, start:start + len(sample_ids)], alone, atol=1e-4, rtol=1e-4)
                start += len(sample_ids)


def test_flex_attention_loads_or_names_the_key(monkeypatch, tiny_model_dir):
    flex = SFTParams(attn_implementation="flex_attention", method="full")
    assert attention(flex) == "flex_attention"  # torch 2.13 has it
    assert load_model(tiny_model_dir, flex).config._attn_implementation == "flex_attention"
    monkeypatch.setattr(model_module, "flex_attention_ready", lambda: False)
    with pytest.raises(UserError, match="^sft.attn_implementation: flex_attention needs torch.nn.attention"):
        attention(flex)


def test_max_length_goes_up_to_128k_and_liger_names_its_key():
    assert parse_params({"sft": {"max_length": 131072}}).sft.max_length == 131072
    with pytest.raises(ParamsError, match="sft.max_length"):
        parse_params({"sft": {"max_length": 131073}})
    assert not model_module.use_liger(SFTParams())  # auto: no liger-kernel package, no GPU here
    with pytest.raises(UserError, match="^sft.liger: true needs the liger-kernel package"):
        model_module.use_liger(SFTParams(liger="true"))


@pytest.mark.parametrize("name, kind", [("fsdp", "FSDP"), ("zero3", "DEEPSPEED")])
def test_accelerate_configs_parse_and_name_their_distributed_type(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DistributedType

    from pipelines.sft import launch_command

    path = REPO / "configs" / "accelerate" / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert config.distributed_type == DistributedType[kind]
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == 3
    params = SFTParams(num_processes=4, accelerate_config=f"configs/accelerate/{name}.yaml")
    cmd = launch_command(params, REPO, ["--max-steps", "2"])
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"] and cmd[-4:] == [
        "-m", "pipelines.sft", "--max-steps", "2"]
    args = launch_command_parser().parse_args(cmd[3:])  # as accelerate launch reads them, config file merged
    _validate_launch_command(args)
    assert args.num_processes == 4 and (args.use_fsdp, args.use_deepspeed) == (kind == "FSDP", kind == "DEEPSPEED")


def test_a_missing_accelerate_config_names_the_key(tmp_path):
    from pipelines.sft import launch_command

    assert "--config_file" not in launch_command(SFTParams(num_processes=2), tmp_path, [])  # accelerate's default
    with pytest.raises(UserError, match="^sft.accelerate_config: configs/nope.yaml not found"):
        launch_command(SFTParams(num_processes=2, accelerate_config="configs/nope.yaml"), tmp_path, [])


def test_limi_eval_sampling_preset():
    params = parse_params({"eval": {"sampling_preset": "limi", "sampling": {"max_tokens": 512, "temperature": 0.0}}})
    assert params.eval.sampling.model_dump() == {"max_tokens": 512, "temperature": 0.6, "top_p": 0.95, "seed": 0}
    assert parse_params({"eval": {"sampling_preset": "limi"}}).eval.sampling.max_tokens == 160
    assert parse_params({}).eval.sampling.temperature == 0.0
    with pytest.raises(ParamsError, match="eval.sampling_preset"):
        parse_params({"eval": {"sampling_preset": "limo"}})
