"""Logging, progress and the error contract shared by every entry point.

On a terminal long loops show a tqdm bar; elsewhere (CI, DVC logs, Prefect workers) they print a
plain line every few seconds. A :class:`UserError` ends the program with its one-line message and
exit status 2, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from typing import Callable, Iterable, Iterator, TypeVar

from pipelines.core.errors import UserError

T = TypeVar("T")
log = logging.getLogger("pipelines")


def interactive() -> bool:
    """True when stderr is a terminal and we are not under CI."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def setup_logging(level: int = logging.INFO) -> None:
    """Plain ``time level name: message`` lines on stderr; quiet third-party chatter."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)
    for noisy in ("httpx", "urllib3", "alembic", "mlflow", "filelock", "git", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # renamed-argument notices from transformers say nothing a user of this pipeline can act on
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    if not interactive():
        # tqdm bars (transformers', datasets') turn into hundreds of lines in a log file; tqdm reads this
        os.environ.setdefault("TQDM_DISABLE", "1")


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it",
             every_s: float = 10.0) -> Iterator[T]:
    """Iterate with a progress bar on a terminal, or a log line every ``every_s`` seconds otherwise."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if interactive():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit=unit)
        return
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            of = f"/{total}" if total else ""
            log.info("%s: %d%s %s (%.0fs)", desc, done, of, unit, now - start)
    log.info("%s: done, %d %s in %.1fs", desc, done, unit, time.monotonic() - start)


def main_guard(main: Callable[[], int | None]) -> None:
    """Run an entry point: UserError -> 'error: ...' on stderr and exit 2; KeyboardInterrupt -> 130."""
    setup_logging()
    try:
        code = main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
