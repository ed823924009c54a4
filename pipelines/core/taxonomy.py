"""LIMI's task taxonomy: two domains and ten categories, defined once."""

from __future__ import annotations

from typing import Literal, get_args

Domain = Literal["software", "research"]
Category = Literal[
    "algorithm",
    "application_development",
    "llm_development",
    "backend_development",
    "ui_development",
    "frontend_development",
    "build_deploy_development",
    "research",
    "data_analysis",
    "codebase_debugging",
]
DOMAINS: tuple[str, ...] = get_args(Domain)
CATEGORIES: tuple[str, ...] = get_args(Category)

#: One line each, used in prompts (synthesis, PR-to-query) and reports.
CATEGORY_DESCRIPTIONS: dict[str, str] = {
    "algorithm": "implement or fix an algorithm or data structure with clear correctness checks",
    "application_development": "build a small end-user application or command-line tool",
    "llm_development": "write code that prompts, evaluates or post-processes language-model output",
    "backend_development": "server-side logic: APIs, storage, request handling, background jobs",
    "ui_development": "terminal or desktop user-interface behaviour and rendering",
    "frontend_development": "web pages, HTML/CSS/JS components and their behaviour",
    "build_deploy_development": "build scripts, packaging, configuration, CI and deployment files",
    "research": "investigate a question, compare approaches or results, and write up findings",
    "data_analysis": "read data files, compute statistics or transformations, report numbers",
    "codebase_debugging": "find and fix a bug in an existing codebase, guided by failing behaviour",
}

#: The domain a category belongs to by default (a task may still override it).
CATEGORY_DOMAIN: dict[str, str] = {c: ("research" if c in ("research", "data_analysis") else "software")
                                   for c in CATEGORIES}
