"""Eval suites, one module per source: ``builtin``, ``easy``, ``humaneval``, ``agencybench``; ``common`` holds the
task types."""
