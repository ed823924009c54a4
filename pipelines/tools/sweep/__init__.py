"""Sample-efficiency sweeps: ``python -m pipelines.tools.sweep`` (``make sweep``).

``cli``      the command line (``run``, ``report``) and the user's documentation
``plan``     the points (teacher subset, size, seed), their DVC overrides, what they start from
``queue``    MLflow runs, ``dvc exp run --queue`` per point, the queue run and waited on
``record``   the sweep record under ``.dvc/tmp/sweeps``
``measures`` what besides the main metric is reported: ``metric`` or ``suite:metric``, read from eval.json
``results``  each experiment's params and metrics from ``dvc exp show --json``
``stats``    mean and spread over seeds, the untuned model as N = 0, the paired intervals per seed, and when a
             difference counts
``report``   ``reports/sweep.md``, logged with the plot to MLflow
``plots``    ``plots/sweep.png``, a panel per measure
"""
