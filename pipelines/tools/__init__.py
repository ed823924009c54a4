"""Commands beside the DAG: the sample-efficiency sweep, the dedup CLI, the UI launcher."""
