"""Loaded at start-up by a stage run with this folder first on PYTHONPATH: SIGKILLs the process at a
chosen point of a write, as a power cut or an OOM killer would, so the test knows where the kill landed.

``LIMI_KILL_WRITE=<file name>:<n>``: on the n-th ``os.write`` to that file, write half the bytes, then die.
``LIMI_KILL_REPLACE=<file name>``: die just before ``os.replace`` moves a finished temp file onto that name.
"""

import os
import signal

_write_spec = os.environ.pop("LIMI_KILL_WRITE", "")
_replace_spec = os.environ.pop("LIMI_KILL_REPLACE", "")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


if _write_spec:
    _name, _, _nth = _write_spec.rpartition(":")
    _seen = [0]
    _write = os.write

    def _killing_write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if os.path.basename(target) == _name:
            _seen[0] += 1
            if _seen[0] == int(_nth):
                _write(fd, bytes(data)[: len(data) // 2])
                _die()
        return _write(fd, data)

    os.write = _killing_write

if _replace_spec:
    _replace = os.replace

    def _killing_replace(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) == _replace_spec:
            _die()
        return _replace(src, dst, *args, **kwargs)

    os.replace = _killing_replace
