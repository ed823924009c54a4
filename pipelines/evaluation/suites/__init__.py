"""Eval suites, one module per source: ``builtin``, ``humaneval``, ``agencybench``; ``common`` holds the task types."""
