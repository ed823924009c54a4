"""The library half of the ``eval`` stage: eval suites (tasks with rounds of subtasks) and the metrics
computed from per-episode outcomes (AgencyBench's FTFC, SR@R, RC@R, plus pass@k, pass^k and costs)."""
