"""``openai`` backend: any OpenAI-compatible chat-completions endpoint.

The key comes from the environment variable named in params (never from a file); retries use
exponential back-off with full jitter on 429, 5xx, timeouts and connection errors, honouring
``Retry-After``; anything else (a rejected key, an unknown model) fails at once with one line.

Reasoning models (OpenAI's o-series and gpt-5; ``reasoning`` in params, by default detected from the model
name) refuse ``max_tokens`` and sampling parameters with HTTP 400: they get ``max_completion_tokens`` (which
counts their hidden reasoning too), no temperature, top_p or seed, and ``reasoning_effort`` when set. The
reasoning text an endpoint returns (``reasoning_content``, or ``reasoning`` as OpenRouter and newer vLLM
name it) is kept on the assistant message as ``reasoning_content``.

A server that has no tool parser for the model it serves (``transformers serve`` with a Llama-family model,
vLLM without ``--tool-call-parser``) returns the model's tool-call markup as text; with
``tool_call_parser: hermes`` (the default; also ``chatml``, ``qwen3``) ``<tool_call>{...}</tool_call>`` blocks in
the content become tool calls, and a leading ``<think>`` block the reasoning, as the local backend parses its
own output (:mod:`pipelines.llm.toolcalls`); ``glm45`` and ``llama31`` read those families' formats.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from typing import Any

from pipelines.core.errors import ModelError
from pipelines.llm.base import EndpointError, Reply, Usage, assistant_message
from pipelines.llm.config import is_reasoning_model
from pipelines.llm.toolcalls import has_markup, parse_assistant_text

log = logging.getLogger(__name__)
NO_KEY = "not-needed"  # local servers (vLLM, Ollama) accept any key, but the client wants one
TOOL_CALL_PARSERS = ("hermes", "chatml", "qwen3", "glm45", "llama31", "none")


class OpenAIModel:
    """Chat with ``model`` at ``base_url``."""

    def __init__(self, model: str, *, name: str = "openai", base_url: str = "https://api.openai.com/v1",
                 api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 120.0, max_retries: int = 5,
                 backoff_s: float = 1.0, usd_per_mtok_in: float = 0.0, usd_per_mtok_out: float = 0.0,
                 sampling: dict[str, Any] | None = None, reasoning: bool | None = None,
                 reasoning_effort: str | None = None, max_completion_tokens: int | None = None,
                 tool_call_parser: str = "hermes"):
        import openai

        if tool_call_parser not in TOOL_CALL_PARSERS:
            raise ModelError(f"model {name!r}: tool_call_parser must be one of {', '.join(TOOL_CALL_PARSERS)}, "
                             f"not {tool_call_parser!r}")
        self.name = name
        self.model = model
        self.reasoning = is_reasoning_model(model) if reasoning is None else bool(reasoning)
        self.reasoning_effort = reasoning_effort
        self.max_completion_tokens = max_completion_tokens
        self.tool_call_parser = tool_call_parser
        self.base_url = base_url
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.prices = (usd_per_mtok_in, usd_per_mtok_out)
        self.defaults = dict(sampling or {})
        key = os.environ.get(api_key_env)
        if not key:
            if "api.openai.com" in base_url:
                raise ModelError(f"model {name!r}: set the API key in the environment variable {api_key_env}")
            key = NO_KEY
        self.api_key_env = api_key_env
        # the SDK's own retries are off: ours log, count attempts and end in a clear error
        self._client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=0)

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **sampling: Any) -> Reply:
        import openai

        opts = {**self.defaults, **{k: v for k, v in sampling.items() if v is not None}}
        request = self.request(messages, opts)
        if tools:
            request["tools"] = tools
            if opts.get("tool_choice") not in (None, "auto"):
                request["tool_choice"] = opts["tool_choice"]
        started = time.perf_counter()
        last: Exception | None = None
        for attempt in range(1, self.max_retries + 2):
            try:
                response = self._client.chat.completions.create(**request)
                _check_completion(response)
                return self._reply(response, time.perf_counter() - started, attempt, tools)
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise ModelError(
                    f"{self.base_url}: the endpoint rejected the API key from ${self.api_key_env} "
                    f"(HTTP {exc.status_code}); set a valid key"
                ) from None
            except openai.NotFoundError:
                raise ModelError(f"{self.base_url}: model {self.model!r} not found (HTTP 404); check the model name") from None
            except openai.BadRequestError as exc:
                raise ModelError(f"{self.base_url}: request rejected (HTTP 400): {_short(exc)}") from None
            except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                    openai.APIConnectionError, openai.APIStatusError, json.JSONDecodeError, MalformedAnswer) as exc:
                # a body that is not a chat completion (a proxy's error page, a cut stream) is retried like a 5xx
                status = getattr(exc, "status_code", None)
                if status is not None and status < 500 and status != 429:
                    raise ModelError(f"{self.base_url}: HTTP {status}: {_short(exc)}") from None
                last = exc
                if attempt > self.max_retries:
                    break
                delay = _retry_after(exc) or random.uniform(0, self.backoff_s * 2 ** (attempt - 1))
                log.warning("model %s: %s; retry %d/%d in %.1fs", self.name, _short(exc), attempt,
                            self.max_retries, delay)
                time.sleep(delay)
        raise EndpointError(
            f"{self.base_url}: no answer after {self.max_retries + 1} attempts (last: {_short(last)}); "
            "check that the endpoint is up and reachable"
        )

    def request(self, messages: list[dict[str, Any]], opts: dict[str, Any]) -> dict[str, Any]:
        """The request body less the tools: a reasoning model gets ``max_completion_tokens`` and no sampling
        parameters (it refuses them), any model ``reasoning_effort`` when set."""
        request: dict[str, Any] = {"model": self.model, "messages": [_to_wire(m) for m in messages]}
        max_tokens = int(opts.get("max_tokens", 256))
        if self.reasoning:
            request["max_completion_tokens"] = self.max_completion_tokens or max_tokens
        else:
            request["max_tokens"] = max_tokens
            request["temperature"] = float(opts.get("temperature", 0.0))
            request["top_p"] = float(opts.get("top_p", 1.0))
            if opts.get("seed") is not None:
                request["seed"] = int(opts["seed"])
        if self.reasoning_effort:
            request["reasoning_effort"] = self.reasoning_effort
        return request

    def _reply(self, response: Any, seconds: float, attempts: int, tools: list[dict[str, Any]] | None = None) -> Reply:
        choice = response.choices[0]
        msg = choice.message
        calls, error = [], None
        for call in msg.tool_calls or []:
            raw_args = call.function.arguments or "{}"
            try:
                args = json.loads(raw_args)
                if not isinstance(args, dict):
                    raise ValueError("not an object")
            except ValueError:
                error = f"the arguments of tool call {call.function.name!r} are not a JSON object: {raw_args[:200]!r}"
                continue
            calls.append({"id": call.id, "function": {"name": call.function.name, "arguments": args}})
        u = response.usage
        usage = Usage(seconds=seconds, attempts=attempts)
        if u is not None:
            usage.prompt_tokens = u.prompt_tokens or 0
            usage.completion_tokens = u.completion_tokens or 0
            details = getattr(u, "prompt_tokens_details", None)
            usage.cached_tokens = getattr(details, "cached_tokens", 0) or 0
        usage.cost_usd = (usage.prompt_tokens * self.prices[0] + usage.completion_tokens * self.prices[1]) / 1e6
        reasoning = _reasoning_text(msg)
        content, raw = msg.content or "", None
        family = "chatml" if self.tool_call_parser == "hermes" else self.tool_call_parser
        if family != "none" and not msg.tool_calls and has_markup(content, family):
            # the server handed the model's markup back as text: parse it as the local backend does
            parsed = parse_assistant_text(content, family, tools)
            content, calls, error, raw = parsed.content, parsed.tool_calls, parsed.error, msg.content
            reasoning = reasoning or parsed.reasoning
        return Reply(message=assistant_message(content, calls, reasoning), usage=usage,
                     format_error=error, finish_reason=choice.finish_reason or "stop", raw=raw)


class MalformedAnswer(Exception):
    """The endpoint answered 200 with something that is not a chat completion."""


def _check_completion(response: Any) -> None:
    choices = getattr(response, "choices", None)
    if not choices or getattr(choices[0], "message", None) is None:
        got = response[:80] if isinstance(response, str) else type(response).__name__
        raise MalformedAnswer(f"the answer is not a chat completion with a message ({got!r})")


def _reasoning_text(msg: Any) -> str | None:
    """The reasoning an endpoint returned beside the answer: ``reasoning_content`` (DeepSeek, vLLM, SGLang,
    transformers serve) or ``reasoning`` (OpenRouter, newer vLLM), when it is text."""
    for name in ("reasoning_content", "reasoning"):
        value = getattr(msg, name, None)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _to_wire(message: dict[str, Any]) -> dict[str, Any]:
    """Record form -> API form: tool-call arguments become JSON strings; extra keys are dropped (the
    reasoning too: endpoints that return it refuse it back, DeepSeek's with HTTP 400)."""
    out = {k: v for k, v in message.items() if k in ("role", "content", "name", "tool_call_id")}
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {
                "id": c.get("id") or f"call_{i}",
                "type": "function",
                "function": {
                    "name": c["function"]["name"],
                    "arguments": c["function"]["arguments"] if isinstance(c["function"]["arguments"], str)
                    else json.dumps(c["function"]["arguments"], ensure_ascii=False),
                },
            }
            for i, c in enumerate(message["tool_calls"])
        ]
    if out.get("content") is None and message["role"] != "assistant":
        out["content"] = ""
    return out


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return min(float(value), 120.0) if value else None
    except ValueError:
        return None


def _short(exc: Exception | None) -> str:
    text = f"{type(exc).__name__}: {exc}" if exc else "unknown error"
    return text.splitlines()[0][:300]
