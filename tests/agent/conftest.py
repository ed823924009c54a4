"""Fixtures the agent's tests share."""

from pathlib import Path

import pytest


@pytest.fixture
def workspace(tmp_path) -> Path:
    """An empty folder for a sandbox or toolbox to work in."""
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws
