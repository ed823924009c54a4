from pathlib import Path

ORIGINS = Path("cors_origins.txt").read_text().split()
print("allowed:", ", ".join(ORIGINS))
