"""What decoding one upstream JSON payload costs: pydantic models vs a JSON parser plus dict access.

Every candidate turns the same payloads into the few fields an adapter reads (text, finish reason,
model, usage, logprobs, tool calls), so the figures compare whole decodes, not bare parsers:

- ``pydantic``: ``model_validate_json`` into the wire models of ``wire/openai.py`` (how the
  OpenAI-compatible adapter read chunks and bodies before), then reading their attributes;
- ``json``, ``orjson``, ``from_json``: ``json.loads``, ``orjson.loads`` or ``pydantic_core.from_json``
  into dicts, then the same fields read with ``dict.get``.

Payloads: an OpenAI-compatible chunk (plain, and with one token's logprobs as FakeUpstream sends them),
an Anthropic ``content_block_delta``, a Gemini chunk, and a whole 20-token OpenAI body with logprobs.
Prints µs per payload (best of ``--repeat`` runs of ``--number`` decodes) and each one's ratio to the
fastest. CPU-bound and single-threaded; a few seconds in all. Needs orjson (``pip install orjson``), a
candidate only: the adapters use ``from_json``.

Usage: python benchmarks/parsing.py [--number N] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable
from typing import Any

import orjson
from pydantic_core import from_json

from model_orchestrator.wire.openai import ChatCompletion, ChatCompletionChunk

_HEAD = {"id": "chatcmpl-fake0123456789abcd", "created": 1_733_500_000, "model": "gpt-4o-mini-2024-07-18"}
_TOKEN = {
    "token": " Paris",
    "logprob": -0.01,
    "bytes": [32, 80, 97],
    "top_logprobs": [
        {"token": " Paris", "logprob": -0.01, "bytes": [32, 80, 97]},
        {"token": " paris", "logprob": -4.6, "bytes": [32, 112, 97]},
    ],
}


def _chunk(logprobs: bool) -> str:
    choice = {
        "index": 0,
        "delta": {"content": " Paris"},
        "logprobs": {"content": [_TOKEN]} if logprobs else None,
        "finish_reason": None,
    }
    body = {**_HEAD, "object": "chat.completion.chunk", "system_fingerprint": "fp_1", "choices": [choice]}
    return json.dumps(body)


def _body() -> bytes:
    message = {"role": "assistant", "content": " Paris" * 20, "refusal": None}
    choice = {"index": 0, "message": message, "logprobs": {"content": [_TOKEN] * 20}, "finish_reason": "stop"}
    usage = {"prompt_tokens": 20, "completion_tokens": 20, "total_tokens": 40}
    return json.dumps({**_HEAD, "object": "chat.completion", "choices": [choice], "usage": usage}).encode()


ANTHROPIC = json.dumps(
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " Paris"}}
)
GEMINI = json.dumps(
    {
        "candidates": [{"content": {"parts": [{"text": " Paris"}], "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3, "totalTokenCount": 12},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "mKdZaM2fH5qLz7IP5cGQwAc",
    }
)


def _logprobs_of_dicts(logprobs: Any) -> tuple[tuple[str, float, tuple[tuple[str, float], ...]], ...]:
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content:
        return ()
    return tuple(
        (t["token"], t["logprob"], tuple((a["token"], a["logprob"]) for a in t.get("top_logprobs") or ()))
        for t in content
    )


def _openai_dict(data: Any) -> tuple[object, ...]:
    choice = data["choices"][0]
    delta = choice.get("delta") or choice.get("message") or {}
    return (
        delta.get("content"),
        choice.get("finish_reason"),
        data.get("model"),
        data.get("usage"),
        delta.get("tool_calls"),
        _logprobs_of_dicts(choice.get("logprobs")),
    )


def _openai_model(data: ChatCompletionChunk | ChatCompletion) -> tuple[object, ...]:
    choice = (data.choices or [])[0]
    delta = choice.delta if isinstance(data, ChatCompletionChunk) else choice.message  # type: ignore[union-attr]
    logprobs = choice.logprobs.content if choice.logprobs and choice.logprobs.content else []
    tops = tuple((t.token, t.logprob, tuple((a.token, a.logprob) for a in t.top_logprobs)) for t in logprobs)
    return (delta.content, choice.finish_reason, data.model, data.usage, delta.tool_calls, tops)


def _anthropic_dict(data: Any) -> tuple[object, ...]:
    delta = data.get("delta") or {}
    return (data.get("type"), data.get("index"), delta.get("type"), delta.get("text"))


def _gemini_dict(data: Any) -> tuple[object, ...]:
    candidate = data["candidates"][0]
    parts = (candidate.get("content") or {}).get("parts") or []
    text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
    return (text, candidate.get("finishReason"), data.get("modelVersion"), data.get("usageMetadata"))


LOADERS: dict[str, Callable[[str | bytes], Any]] = {
    "json": json.loads,
    "orjson": orjson.loads,
    "from_json": from_json,
}


def candidates() -> dict[str, dict[str, Callable[[], object]]]:
    """Per payload, each candidate decode as a zero-argument callable."""
    plain, with_logprobs, body = _chunk(False), _chunk(True), _body()
    table: dict[str, dict[str, Callable[[], object]]] = {
        "openai chunk": {"pydantic": lambda: _openai_model(ChatCompletionChunk.model_validate_json(plain))},
        "openai chunk + logprobs": {
            "pydantic": lambda: _openai_model(ChatCompletionChunk.model_validate_json(with_logprobs))
        },
        "openai body, 20 logprobs": {
            "pydantic": lambda: _openai_model(ChatCompletion.model_validate_json(body))
        },
        "anthropic delta": {},
        "gemini chunk": {},
    }
    for name, load in LOADERS.items():
        table["openai chunk"][name] = lambda load=load: _openai_dict(load(plain))
        table["openai chunk + logprobs"][name] = lambda load=load: _openai_dict(load(with_logprobs))
        table["openai body, 20 logprobs"][name] = lambda load=load: _openai_dict(load(body))
        table["anthropic delta"][name] = lambda load=load: _anthropic_dict(load(ANTHROPIC))
        table["gemini chunk"][name] = lambda load=load: _gemini_dict(load(GEMINI))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="decodes per timing run")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs; the best is kept")
    args = parser.parse_args()
    for payload, decoders in candidates().items():
        times = {
            name: min(timeit.repeat(decode, number=args.number, repeat=args.repeat)) / args.number * 1e6
            for name, decode in decoders.items()
        }
        best = min(times.values())
        row = "  ".join(f"{name} {us:6.2f} µs ({us / best:4.1f}x)" for name, us in times.items())
        print(f"{payload:26} {row}")


if __name__ == "__main__":
    main()
