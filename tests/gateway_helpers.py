"""A live gateway over FakeUpstream for the gateway tests: config, start/stop, clients."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import openai

from model_orchestrator.config.loader import parse_config
from model_orchestrator.gateway import Gateway, GatewaySettings, Limits
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.testing import FakeUpstream

MASTER = "master-key-for-tests-0123456789"


def config_text(up: FakeUpstream, extra: str = "") -> str:
    """Two priced models on the fake (which answers images, tools and JSON schemas, so they declare those
    capabilities), a named fallback strategy; no retries (tests script every reply)."""
    base = up.openai_base
    capabilities = "capabilities: [text, vision, tools, json, json_schema]"
    return f"""
default_model: a
models:
  - {{name: a, provider: openai, model: m-a, api_base: "{base}", api_key_env: UP_KEY,
      price: {{input: 1000, output: 2000}}, {capabilities}}}
  - {{name: b, provider: openai, model: m-b, api_base: "{base}", api_key_env: UP_KEY,
      price: {{input: 1000, output: 2000}}, {capabilities}}}
strategies:
  - {{name: safe, type: fallback, chain: [a, b]}}
resilience:
  retry: {{max_attempts: 1}}
  breaker: {{failure_threshold: 1000}}
{extra}
"""


@dataclass
class Live:
    """A running gateway: its URL, the orchestrator behind it, SDK clients."""

    gateway: Gateway
    orch: Orchestrator
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.gateway.url

    def client(self, key: str | None = MASTER) -> openai.AsyncOpenAI:
        """The official SDK pointed at the gateway (no retries: tests see every status)."""
        made = openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key or "", max_retries=0, timeout=20)
        self.clients.append(made)
        return made


@contextlib.asynccontextmanager
async def live_gateway(
    up: FakeUpstream,
    *,
    extra_config: str = "",
    auth: bool = True,
    limits: Limits | None = None,
    shutdown_timeout: float = 10.0,
) -> AsyncIterator[Live]:
    """Serve a gateway on 127.0.0.1 (a free port) over ``up`` for the ``async with`` block."""
    config = parse_config(config_text(up, extra_config))
    orch = Orchestrator(config, env={"UP_KEY": "upstream-secret"})
    settings = GatewaySettings(
        port=0,
        auth=auth,
        master_key=MASTER if auth else None,
        limits=limits or Limits(),
        shutdown_timeout=shutdown_timeout,
    )
    gateway = Gateway(orch, settings)
    await gateway.start()
    live = Live(gateway, orch)
    try:
        yield live
    finally:
        for client in live.clients:
            await client.close()
        await gateway.stop()


USER = [{"role": "user", "content": "What is the capital of France?"}]
