"""A tiny in-memory notes service, routed by hand so any HTTP server can sit in front of it."""
import json

_notes = []
_next_id = [1]


def reset():
    _notes.clear()
    _next_id[0] = 1


def _create(body):
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return 400, {"error": "body is not valid JSON"}
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str) or not text:
        return 400, {"error": "text is required"}
    note = {"id": _next_id[0], "text": text}
    _next_id[0] += 1
    _notes.append(note)
    return 201, dict(note)


def handle(method, path, body=""):
    if method == "GET" and path == "/notes":
        return 200, list(_notes)
    if method == "POST" and path == "/notes":
        return _create(body)
    if method == "GET" and path.startswith("/notes/"):
        for note in _notes:
            if str(note["id"]) == path[len("/notes/"):]:
                return 200, dict(note)
    return 404, {"error": "not found"}
