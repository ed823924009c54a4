"""Sample-efficiency sweeps: ``python -m pipelines.tools.sweep`` (see :mod:`pipelines.tools.sweep.cli`)."""
