"""Agentic query synthesis: teacher drafts, critic reviews and rewrites, near-duplicate checks."""
