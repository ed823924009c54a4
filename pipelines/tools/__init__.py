"""Commands beside the DAG: the `limi` command (cli.py), the sample-efficiency sweep, the dedup CLI, the UI launcher."""
