"""Fail when `make repro` changed dvc.lock for a stage the README does not let differ.

Usage: python .ci/check_lock.py COMMITTED_LOCK NEW_LOCK README [LOCK_MACHINE]
       python .ci/check_lock.py --machine          (this machine's CPU, as LOCK_MACHINE records it)

Two README lines name the exceptions (a `foreach` stage's name covers its instances: `eval_shard` covers
`eval_shard@0`):
- "Stages whose outputs may differ between runs: `a`, `b`." (or "...: none."): any change is allowed;
- "Stages whose outputs differ on another CPU model: `c`." (or "...: none."): the stage must have the same
  command, params and deps (its inputs reproduced), and its outputs must be the same bytes when this
  machine's CPU is the one LOCK_MACHINE (default .ci/lock-machine.txt) says wrote the committed lock;
  on another CPU model its outputs may differ, and the check says so.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ANY_RUN = "Stages whose outputs may differ between runs"
CPU_MODEL = "Stages whose outputs differ on another CPU model"


def hashes(stage: dict) -> dict[str, str]:
    out = {}
    for kind in ("deps", "outs"):
        for item in stage.get(kind, []) or []:
            out[f"{kind}:{item['path']}"] = item.get("md5") or item.get("hash") or ""
    out["params"] = repr(stage.get("params"))
    out["cmd"] = repr(stage.get("cmd"))
    return out


def machine(cpuinfo: str | None = None) -> str:
    """The CPU as one line: vendor, family, model and model name of the first processor in /proc/cpuinfo."""
    text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return " | ".join(fields.get(k, "?") for k in ("vendor_id", "cpu family", "model", "model name"))


def listed(readme_text: str, heading: str, readme: str) -> set[str] | None:
    line = re.search(re.escape(heading) + r": (.*)", readme_text)
    if not line:
        print(f"{readme}: no line '{heading}: ...'", file=sys.stderr)
        return None
    return set(re.findall(r"`([\w-]+)`", line.group(1)))


def main(committed: str, new: str, readme: str, lock_machine: str = ".ci/lock-machine.txt") -> int:
    text = Path(readme).read_text()
    any_run, cpu_model = listed(text, ANY_RUN, readme), listed(text, CPU_MODEL, readme)
    if any_run is None or cpu_model is None:
        return 2
    recorded = Path(lock_machine).read_text().strip() if Path(lock_machine).exists() else "(not recorded)"
    here = machine()
    same_cpu = recorded == here
    print(f"dvc.lock written on: {recorded}\nthis machine:        {here}")
    old = (yaml.safe_load(Path(committed).read_text()) or {}).get("stages", {})
    cur = (yaml.safe_load(Path(new).read_text()) or {}).get("stages", {})
    bad = []
    for name in sorted(set(old) | set(cur)):
        a, b = hashes(old.get(name, {})), hashes(cur.get(name, {}))
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if not changed:
            continue
        base = name.split("@")[0]
        if name in any_run or base in any_run:
            ok, note = True, "allowed (README: may differ between runs)"
        elif name in cpu_model or base in cpu_model:
            inputs = [k for k in changed if not k.startswith("outs:")]
            if inputs:
                ok, note = False, f"NOT ALLOWED (its inputs changed: {', '.join(inputs)})"
            elif same_cpu:
                ok, note = False, "NOT ALLOWED (the same CPU model wrote the committed lock)"
            else:
                ok, note = True, "allowed (same inputs; README: outputs differ on another CPU model, and this is one)"
        else:
            ok, note = False, "NOT ALLOWED"
        print(f"dvc.lock stage {name}: {', '.join(changed)} changed: {note}")
        if not ok:
            bad.append(name)
    if bad:
        print(f"make repro does not reproduce the committed dvc.lock for: {', '.join(bad)}", file=sys.stderr)
        return 1
    notes = [f"allowed to differ: {', '.join(sorted(any_run))}"] if any_run else []
    if cpu_model and not same_cpu:
        notes.append(f"outputs not compared on this CPU model: {', '.join(sorted(cpu_model))}")
    print("dvc.lock reproduced" + (f" ({'; '.join(notes)})" if notes else ""))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--machine"]:
        print(machine())
        sys.exit(0)
    sys.exit(main(*sys.argv[1:5]))
