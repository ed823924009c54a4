"""A tiny in-memory notes service, routed by hand so any HTTP server can sit in front of it."""
import json

_notes = []


def reset():
    _notes.clear()


def handle(method, path, body=""):
    if method == "GET" and path == "/notes":
        return 200, list(_notes)
    return 404, {"error": "not found"}
