"""LIMI-style agentic data pipeline: stages run by DVC, orchestrated by Prefect, tracked in MLflow.

Each stage lives in ``pipelines/<stage>.py`` and runs as ``python -m pipelines.<stage>``;
shared machinery sits in the sub-packages (``llm``, ``agent``, ``curation``).
"""

__version__ = "0.1.0"
