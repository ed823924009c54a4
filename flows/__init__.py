"""Prefect flows that run the DVC stages: DVC decides what is stale, Prefect runs and retries it.

``flows.pipeline``   the ``limi-pipeline`` flow and its command line (``python -m flows.pipeline``)
``flows.dag``        the stage order, read from DVC's own graph
``flows.records``    the MLflow parent run and the Prefect artifacts of a flow run

Each DVC call runs through :func:`pipelines.core.dvc.run_dvc` (a child process that reports what ran).
"""
