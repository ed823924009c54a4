"""The finished run with the lowest validation loss at any epoch, written to best_run.txt."""
import json
from pathlib import Path

best = None
for path in sorted(Path("runs").glob("*.json")):
    run = json.loads(path.read_text())
    if run["status"] != "finished":
        continue
    loss = min(run["val_loss"])
    if best is None or loss < best[0]:
        best = (loss, run["val_loss"].index(loss) + 1, path.name, run)
loss, epoch, name, run = best
Path("best_run.txt").write_text(
    f"{name} lr={run['lr']} batch_size={run['batch_size']} epoch={epoch} val_loss={loss:.4f}\n")
