"""Reasoning models through the openai backend, against a real HTTP server on loopback that answers as OpenAI
answers a reasoning model: HTTP 400 for ``max_tokens`` or sampling parameters, the reasoning beside the answer.
Also: tool-call markup a server returns as text."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from pipelines.collect import collect
from pipelines.collection.writer import EPISODES_FILE
from pipelines.core.errors import ModelError, ParamsError
from pipelines.core.params import load_params, parse_params
from pipelines.core.schema import read_trajectories
from pipelines.llm.config import is_reasoning_model
from pipelines.llm.openai_backend import OpenAIModel
from tests.test_collect import project

KEY = "sk-reasoning-test-9f8e7d6c5b4a"
REFUSED = ("max_tokens", "temperature", "top_p", "seed")  # what OpenAI's reasoning models answer 400 to
NOT_REASONING = {"gpt-5-chat-latest"}  # named like one, served like a chat model: what reasoning: false is for


def call(name: str, **arguments) -> dict[str, Any]:
    return {"id": f"call_{name}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


class OpenAILike:
    """Chat completions on loopback. For a model named as a reasoning model it refuses, as api.openai.com does,
    ``max_tokens`` ("use max_completion_tokens") and sampling parameters with HTTP 400 before anything else;
    it answers the planned turns in order, each with its reasoning under ``reasoning_field``."""

    def __init__(self, turns: list[dict[str, Any]], reasoning_field: str = "reasoning_content"):
        self.turns = list(turns)
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"auth": self.headers.get("Authorization"), "body": body})
                status, payload = fake.answer(body, reasoning_field)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def answer(self, body: dict[str, Any], reasoning_field: str) -> tuple[int, dict[str, Any]]:
        if is_reasoning_model(body["model"]) and body["model"] not in NOT_REASONING:
            for param in REFUSED:
                if param in body:
                    hint = " Use 'max_completion_tokens' instead." if param == "max_tokens" else ""
                    return 400, {"error": {"message": f"Unsupported parameter: '{param}' is not supported with "
                                           f"this model.{hint}", "type": "invalid_request_error", "param": param,
                                           "code": "unsupported_parameter"}}
        if not self.turns:
            return 500, {"error": {"message": "no turn planned"}}
        turn = dict(self.turns.pop(0))
        thought = turn.pop("thought", None)
        message = {"role": "assistant", "content": turn.get("content"), **turn}
        if thought is not None:
            message[reasoning_field] = thought
        return 200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "message": message,
                                  "finish_reason": "tool_calls" if turn.get("tool_calls") else "stop"}],
                     "usage": {"prompt_tokens": 120, "completion_tokens": 300, "total_tokens": 420,
                               "completion_tokens_details": {"reasoning_tokens": 250}}}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("LIMI_REASONING_KEY", KEY)
    return KEY


def backend(fake: OpenAILike, model: str = "gpt-5-mini", **kw) -> OpenAIModel:
    return OpenAIModel(model, base_url=fake.url, api_key_env="LIMI_REASONING_KEY", timeout_s=5, max_retries=0, **kw)


HI = [{"role": "user", "content": "hi"}]


# --- the request a reasoning model gets -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5.1", "openai/gpt-5-nano"])
def test_reasoning_models_are_known_by_name(name):
    assert is_reasoning_model(name)


@pytest.mark.parametrize("name", ["gpt-4.1", "gpt-4o-mini", "o2", "omni-moderation", "gpt-50", "Qwen/Qwen3-8B"])
def test_other_models_are_not(name):
    assert not is_reasoning_model(name)


def test_reasoning_model_gets_max_completion_tokens_and_no_sampling(key):
    fake = OpenAILike([{"content": "4", "thought": "2 + 2 is 4."}])
    try:
        reply = backend(fake, reasoning_effort="low").chat(HI, max_tokens=64, temperature=0.7, top_p=0.9, seed=3)
    finally:
        fake.close()
    body = fake.requests[0]["body"]
    assert body["max_completion_tokens"] == 64 and body["reasoning_effort"] == "low"
    assert not set(REFUSED) & set(body)
    assert reply.content == "4" and reply.message["reasoning_content"] == "2 + 2 is 4."


def test_the_fake_refuses_what_the_old_request_sent(key):
    """``reasoning: false`` forces the plain request: the server answers 400, and the error says why."""
    fake = OpenAILike([{"content": "never"}])
    try:
        with pytest.raises(ModelError, match=r"HTTP 400.*'max_tokens' is not supported.*max_completion_tokens"):
            backend(fake, reasoning=False).chat(HI)
    finally:
        fake.close()
    assert fake.requests[0]["body"]["max_tokens"] == 256 and "max_completion_tokens" not in fake.requests[0]["body"]


def test_explicit_override_both_ways_and_budget(key):
    fake = OpenAILike([{"content": "a"}, {"content": "b"}])
    try:
        backend(fake, model="my-served-r1", reasoning=True, max_completion_tokens=4000).chat(HI, max_tokens=64)
        backend(fake, model="gpt-5-chat-latest", reasoning=False).chat(HI, max_tokens=64, temperature=0.2)
    finally:
        fake.close()
    first, second = (r["body"] for r in fake.requests)
    assert first["max_completion_tokens"] == 4000 and not set(REFUSED) & set(first)
    assert "reasoning_effort" not in first
    assert second["max_tokens"] == 64 and second["temperature"] == 0.2 and "max_completion_tokens" not in second


def test_reasoning_under_the_name_reasoning_is_kept_and_never_sent_back(key):
    fake = OpenAILike([{"content": "x", "thought": "thinking"}, {"content": "y"}], reasoning_field="reasoning")
    try:
        model = backend(fake)
        first = model.chat(HI)
        model.chat([*HI, first.message, {"role": "user", "content": "and?"}])
    finally:
        fake.close()
    assert first.message["reasoning_content"] == "thinking"
    assert fake.requests[1]["body"]["messages"][1] == {"role": "assistant", "content": "x"}


def test_params_for_reasoning_are_checked():
    ok = parse_params({"llm": {"models": {"embedded": {"backend": "local"}, "r": {
        "backend": "openai", "model": "o3", "reasoning_effort": "high", "max_completion_tokens": 20000}}}})
    assert ok.llm.models["r"].is_reasoning
    with pytest.raises(ParamsError, match="llm.models.r.reasoning_effort"):
        parse_params({"llm": {"models": {"embedded": {"backend": "local"},
                                         "r": {"backend": "openai", "model": "o3", "reasoning_effort": "max"}}}})
    with pytest.raises(ParamsError, match="max_completion_tokens is for reasoning models and 'gpt-4.1'"):
        parse_params({"llm": {"models": {"embedded": {"backend": "local"}, "r": {
            "backend": "openai", "model": "gpt-4.1", "max_completion_tokens": 100}}}})


# --- a collect episode with a reasoning teacher --------------------------------------------------------------

@pytest.mark.needs_bwrap
def test_collect_with_a_reasoning_teacher_keeps_its_reasoning(tmp_path, key):
    """collect's own sampling (max_tokens, temperature 0, top_p, seed) would be refused; the episode succeeds
    and each assistant turn of the record holds the reasoning the endpoint returned."""
    fake = OpenAILike([
        {"content": "", "thought": "The file sets VALUE to None; it should be 0.",
         "tool_calls": [call("write_file", path="value.py", content="VALUE = 0\n")]},
        {"content": "Done.", "thought": "Written; nothing else to do.", "tool_calls": [call("finish", summary="set")]},
    ])
    root = project(tmp_path, 1, parallel=1, rounds=1)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["llm"]["models"]["frontier"] = {"backend": "openai", "model": "gpt-5-mini", "base_url": fake.url,
                                           "api_key_env": "LIMI_REASONING_KEY", "reasoning_effort": "minimal",
                                           "max_completion_tokens": 8000, "timeout_s": 5, "max_retries": 0}
    params["collect"]["teachers"] = [{"model": "frontier", "sources": ["human"]}]
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        report = collect(load_params(root / "params.yaml"), root, root / "data/trajectories")
    finally:
        fake.close()
    (record,) = read_trajectories(root / "data/trajectories" / EPISODES_FILE)
    assert report["outcome"] == {"passed": 1}, record["meta"].get("error")
    turns = [m for m in record["messages"] if m["role"] == "assistant"]
    assert [t.get("reasoning_content") for t in turns] == ["The file sets VALUE to None; it should be 0.",
                                                           "Written; nothing else to do."]
    assert len(fake.requests) == 2
    for request in fake.requests:
        body = request["body"]
        assert not set(REFUSED) & set(body), body.keys()
        assert body["max_completion_tokens"] == 8000 and body["reasoning_effort"] == "minimal"
        assert request["auth"] == f"Bearer {KEY}" and KEY not in json.dumps(body)
    # the reasoning is not sent back with the conversation
    assert all("reasoning_content" not in m for m in fake.requests[1]["body"]["messages"])
    assert KEY not in (root / "data/trajectories" / EPISODES_FILE).read_text()


# --- tool calls returned as text ----------------------------------------------------------------------------

MARKUP = ('Let me look.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>')


def test_tool_call_markup_in_content_is_parsed(key):
    fake = OpenAILike([{"content": "<think>\nfirst look\n</think>\n" + MARKUP}, {"content": MARKUP},
                       {"content": "<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"ls\"\n</tool_call>"}])
    try:
        hermes = backend(fake, model="served-llama").chat(HI)
        kept = backend(fake, model="served-llama", tool_call_parser="none").chat(HI)
        broken = backend(fake, model="served-llama").chat(HI)
    finally:
        fake.close()
    assert hermes.content == "Let me look." and hermes.message["reasoning_content"] == "first look"
    assert [c["function"] for c in hermes.tool_calls] == [{"name": "bash", "arguments": {"command": "ls"}}]
    assert hermes.tool_calls[0]["id"] and hermes.raw.endswith("</tool_call>")
    assert kept.content == MARKUP and kept.tool_calls == []
    assert broken.tool_calls == [] and "not valid JSON" in broken.format_error and broken.raw.startswith("<tool_call>")


def test_structured_tool_calls_win_over_markup(key):
    fake = OpenAILike([{"content": "see <tool_call> in the docs", "tool_calls": [call("finish", summary="s")]}])
    try:
        reply = backend(fake, model="served-llama").chat(HI)
    finally:
        fake.close()
    assert reply.content == "see <tool_call> in the docs" and reply.format_error is None
    assert [c["function"]["name"] for c in reply.tool_calls] == ["finish"]
