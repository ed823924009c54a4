"""Shared pieces of the reliability suite: a misbehaving OpenAI-compatible endpoint, record counting."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.reliability.figures import FIGURES


def completion(content: str = "", tool_calls: list | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [{"id": f"call_{i}", "type": "function",
                                  "function": {"name": name, "arguments": json.dumps(args)}}
                                 for i, (name, args) in enumerate(tool_calls)]
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


class FaultyEndpoint:
    """A chat-completions server on loopback that plays a plan, one step per request.

    Steps: ``("ok", body)``, ``("status", code)`` (with ``Retry-After: 0`` on 429), ``("malformed",)``
    (200 with a body cut mid-JSON), ``("truncated",)`` (a Content-Length the body never reaches, then
    the connection closes), ``("hang", seconds)``. When the plan is empty, ``default`` is played.
    """

    def __init__(self, plan: list[tuple] | None = None, default: tuple = ("status", 500)):
        self.plan = list(plan or [])
        self.default = default
        self.requests: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append({"auth": self.headers.get("Authorization"), "body": body})
                step = endpoint.plan.pop(0) if endpoint.plan else endpoint.default
                try:
                    endpoint._play(self, step)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def _play(handler: BaseHTTPRequestHandler, step: tuple) -> None:
        kind = step[0]
        if kind == "hang":
            time.sleep(step[1])
            return
        status, data, length = 200, b"", None
        if kind == "ok":
            data = json.dumps(step[1]).encode()
        elif kind == "status":
            status, data = step[1], json.dumps({"error": {"message": f"planned {step[1]}"}}).encode()
        elif kind in ("malformed", "truncated"):
            data = b'{"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assis'
            length = len(data) + 4096 if kind == "truncated" else None
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(length or len(data)))
        if status == 429:
            handler.send_header("Retry-After", "0")
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
        if kind == "truncated":
            handler.connection.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def count_records(path: Path, planned: set[str]) -> tuple[int, int]:
    """(lost, duplicates) of an episodes file against the planned episode keys; both go into the figures."""
    keys = [json.loads(line)["meta"]["episode_key"] for line in path.read_text().splitlines() if line.strip()]
    counts = Counter(keys)
    lost = len(planned - set(counts))
    duplicates = sum(n - 1 for n in counts.values())
    FIGURES.count("trajectories_lost", lost)
    FIGURES.count("duplicates", duplicates)
    return lost, duplicates
