"""The openai backend against a real HTTP server on loopback that misbehaves on purpose."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines.core.errors import ModelError
from pipelines.llm.base import EndpointError
from pipelines.llm.openai_backend import OpenAIModel

KEY = "sk-test-marker-123456"


def completion(content="", tool_calls=None):
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}


class Endpoint:
    """Serves a queue of planned answers: (status, body, headers) or ("hang", seconds)."""

    def __init__(self):
        self.plan: list = []
        self.requests: list = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append({"auth": self.headers.get("Authorization"), "body": body})
                step = endpoint.plan.pop(0) if endpoint.plan else (500, {"error": {"message": "no plan"}}, {})
                if step[0] == "hang":
                    time.sleep(step[1])
                    step = (200, completion("late"), {})
                status, payload, headers = step
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def endpoint(monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    ep = Endpoint()
    yield ep
    ep.close()


def model(endpoint, **kw):
    opts = dict(name="remote", base_url=endpoint.url, api_key_env="TEST_LLM_KEY", timeout_s=2.0, max_retries=3,
                backoff_s=0.05)
    opts.update(kw)
    return OpenAIModel("m", **opts)


def test_good_answer_with_tool_call(endpoint):
    endpoint.plan = [(200, completion("", [{"id": "call_1", "type": "function",
                                            "function": {"name": "bash", "arguments": '{"command": "ls"}'}}]), {})]
    reply = model(endpoint, usd_per_mtok_in=1.0, usd_per_mtok_out=2.0).chat(
        [{"role": "user", "content": "ls"},
         {"role": "assistant", "content": "", "tool_calls": [
             {"id": "c0", "type": "function", "function": {"name": "bash", "arguments": {"command": "pwd"}}}]},
         {"role": "tool", "tool_call_id": "c0", "content": "/w"}],
        [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}])
    assert reply.tool_calls[0]["function"] == {"name": "bash", "arguments": {"command": "ls"}}
    assert reply.usage.prompt_tokens == 11 and reply.usage.completion_tokens == 7
    assert reply.usage.cost_usd == pytest.approx((11 * 1 + 7 * 2) / 1e6)
    sent = endpoint.requests[0]
    assert sent["auth"] == f"Bearer {KEY}"
    # record form (arguments as an object) goes over the wire as the API's JSON string
    assert sent["body"]["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"command": "pwd"}'


def test_429_with_retry_after_then_success(endpoint):
    endpoint.plan = [(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.2"}), (200, completion("ok"), {})]
    started = time.monotonic()
    reply = model(endpoint).chat([{"role": "user", "content": "hi"}])
    assert reply.content == "ok" and reply.usage.attempts == 2
    assert time.monotonic() - started >= 0.2


def test_500s_then_success(endpoint):
    endpoint.plan = [(500, {"error": {"message": "boom"}}, {}), (503, {"error": {"message": "busy"}}, {}),
                     (200, completion("fine"), {})]
    assert model(endpoint).chat([{"role": "user", "content": "hi"}]).content == "fine"


def test_hang_past_timeout_is_retried(endpoint):
    endpoint.plan = [("hang", 3.0), (200, completion("after hang"), {})]
    assert model(endpoint, timeout_s=0.5).chat([{"role": "user", "content": "hi"}]).content == "after hang"


def test_persistent_failure_is_an_endpoint_error(endpoint):
    endpoint.plan = [(500, {"error": {"message": "down"}}, {})] * 3
    with pytest.raises(EndpointError, match="no answer after 3 attempts"):
        model(endpoint, max_retries=2).chat([{"role": "user", "content": "hi"}])


def test_wrong_key_fails_at_once_without_leaking_it(endpoint):
    endpoint.plan = [(401, {"error": {"message": "bad key"}}, {})]
    with pytest.raises(ModelError) as info:
        model(endpoint).chat([{"role": "user", "content": "hi"}])
    assert "TEST_LLM_KEY" in str(info.value) and KEY not in str(info.value)
    assert len(endpoint.requests) == 1


def test_unreachable_endpoint(monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", KEY)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = OpenAIModel("m", base_url=f"http://127.0.0.1:{port}/v1", api_key_env="TEST_LLM_KEY", timeout_s=1,
                    max_retries=1, backoff_s=0.01)
    with pytest.raises(EndpointError, match="check that the endpoint is up"):
        m.chat([{"role": "user", "content": "hi"}])


def test_missing_key_for_openai_is_a_config_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        OpenAIModel("gpt-x")


def test_bad_tool_arguments_are_a_format_error(endpoint):
    endpoint.plan = [(200, completion("", [{"id": "c", "type": "function",
                                            "function": {"name": "bash", "arguments": "{not json"}}]), {})]
    reply = model(endpoint).chat([{"role": "user", "content": "hi"}])
    assert reply.format_error and "bash" in reply.format_error and reply.tool_calls == []
