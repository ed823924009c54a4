"""A few real training steps on a tiny randomly initialised Llama with the real tokenizer and chat template."""

from pipelines.training.config import SFTParams
from pipelines.training.data import encode_sample
from pipelines.training.trainer import train
from tests.training.samples import sample


def test_a_few_steps_lower_the_loss(tmp_path, tokenizer, tiny_model_dir):
    samples = [encode_sample(tokenizer, sample(i)) for i in range(2)]
    params = SFTParams(method="full", max_steps=12, learning_rate=3e-3, warmup_ratio=0.0, save_steps=100, batch_size=2)
    metrics = train(samples, tiny_model_dir, tmp_path / "out", params, checkpoints=tmp_path / "ckpt",
                    plots=tmp_path / "plots")
    rows = (tmp_path / "plots" / "loss.csv").read_text().splitlines()
    losses = [float(r.split(",")[1]) for r in rows[1:]]
    assert len(losses) == 12 and losses[-1] < 0.85 * losses[0] and losses[-1] == min(losses)
    assert metrics["train_tokens"] == 12 * sum(len(s["input_ids"]) for s in samples)
    assert (tmp_path / "out" / "model.safetensors").exists() and (tmp_path / "plots" / "loss.png").exists()
