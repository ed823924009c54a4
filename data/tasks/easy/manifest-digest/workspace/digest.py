"""Prints a digest of manifest.txt (the Adler-32 sum of its bytes), so two copies can be compared."""

from pathlib import Path

data = Path("manifest.txt").read_bytes()
a, b = 1, 0
for byte in data:
    a = (a + byte) % 65521
    b = (b + a) % 65521
print(f"entries: {len(data.splitlines())}")
print(f"digest: {(b << 16) | a}")
