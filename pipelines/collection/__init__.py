"""The collect stage's machinery: which episodes to run, running one, the episodes file, the report."""
