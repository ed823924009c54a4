"""The loss plots are a function of the logged steps: no tokens/s column, no matplotlib version in the PNG."""

from pipelines.training.plots import write_plots

HISTORY = [{"step": s, "loss": 2.0 / s, "learning_rate": 1e-3 * (1 - s / 10), "grad_norm": 0.5, "tokens_per_s": 1e3 * s}
           for s in range(1, 6)]


def test_same_history_same_bytes(tmp_path):
    write_plots(HISTORY, tmp_path / "a")
    write_plots([dict(r, tokens_per_s=7.0) for r in HISTORY], tmp_path / "b")  # another machine's speed
    for name in ("loss.csv", "loss.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    rows = (tmp_path / "a" / "loss.csv").read_text().splitlines()
    assert rows[0] == "step,loss,learning_rate,grad_norm" and rows[1] == "1,2.0,0.0009000000000000001,0.5"
    png = (tmp_path / "a" / "loss.png").read_bytes()
    assert png.startswith(b"\x89PNG") and b"Software" not in png and b"atplotlib" not in png
