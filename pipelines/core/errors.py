"""Errors that a user can act on: the entry points print them as one line and exit with status 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or configuration; the message names the file, line or setting and what to do."""


class ParamsError(UserError):
    """``params.yaml`` has an unknown key, a wrong type or an out-of-range value."""


def first_error(exc, whole: str = "(record)") -> tuple[str, str]:
    """The first problem of a pydantic ``ValidationError``: its dotted field (``whole`` when it is the
    object itself) and the message, for one-line errors that name the field."""
    first = exc.errors()[0]
    return ".".join(str(p) for p in first["loc"]) or whole, first["msg"]


class ModelError(UserError):
    """A model backend cannot be used: missing files, unreachable endpoint, rejected key."""
