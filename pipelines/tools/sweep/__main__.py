"""``python -m pipelines.tools.sweep``: the sweep's command line (:mod:`pipelines.tools.sweep.cli`)."""

from pipelines.core.console import main_guard
from pipelines.tools.sweep.cli import main

main_guard(main)
