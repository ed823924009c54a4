"""GitHub's names and defaults, apart from the client so the params model can check them cheaply."""

from __future__ import annotations

import re

TOKEN_ENV = "GITHUB_TOKEN"
DEFAULT_API = "https://api.github.com"
REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
