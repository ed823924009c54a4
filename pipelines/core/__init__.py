"""Shared machinery every stage uses: params, schema, tracking, paths, io, errors, console."""
