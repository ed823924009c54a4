"""Fail when `make repro` changed dvc.lock for a stage the README does not name as non-deterministic.

Usage: python .ci/check_lock.py COMMITTED_LOCK NEW_LOCK README
The README's line "Stages whose outputs may differ between runs: `a`, `b`." (or "...: none.") is the list;
a `foreach` stage's name covers each of its instances (`eval_shard` covers `eval_shard@0`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml


def hashes(stage: dict) -> dict[str, str]:
    out = {}
    for kind in ("deps", "outs"):
        for item in stage.get(kind, []) or []:
            out[f"{kind}:{item['path']}"] = item.get("md5") or item.get("hash") or ""
    out["params"] = repr(stage.get("params"))
    out["cmd"] = repr(stage.get("cmd"))
    return out


def main(committed: str, new: str, readme: str) -> int:
    line = re.search(r"Stages whose outputs may differ between runs: (.*)", Path(readme).read_text())
    if not line:
        print(f"{readme}: no line 'Stages whose outputs may differ between runs: ...'", file=sys.stderr)
        return 2
    allowed = set(re.findall(r"`([\w-]+)`", line.group(1)))
    old = (yaml.safe_load(Path(committed).read_text()) or {}).get("stages", {})
    cur = (yaml.safe_load(Path(new).read_text()) or {}).get("stages", {})
    bad = []
    for name in sorted(set(old) | set(cur)):
        a, b = hashes(old.get(name, {})), hashes(cur.get(name, {}))
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if changed:
            ok = name in allowed or name.split("@")[0] in allowed
            note = "allowed (README names it non-deterministic)" if ok else "NOT ALLOWED"
            print(f"dvc.lock stage {name}: {', '.join(changed)} changed: {note}")
            if not ok:
                bad.append(name)
    if bad:
        print(f"make repro does not reproduce the committed dvc.lock for: {', '.join(bad)}", file=sys.stderr)
        return 1
    print("dvc.lock reproduced" + (f" (allowed to differ: {', '.join(sorted(allowed))})" if allowed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
