"""``Runtime``: one composition root whose ``aclose`` closes every part in reverse build order, each once,
and does not let one failing part keep the others open (FakeUpstream, the SQLite ledger on)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.orchestrator.runtime import Runtime
from model_orchestrator.testing import FakeUpstream, Reply


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def build(upstream: FakeUpstream, database: Path) -> Runtime:
    config = parse_config(
        f"models:\n  - {{name: fast, provider: openai, model: m, api_base: '{upstream.openai_base}', "
        f"api_key_env: K, price: {{input: 1.0, output: 2.0}}}}\n"
        f"ledger: {{url: 'sqlite+aiosqlite:///{database}', flush_interval: 60}}\n"
    )
    return Runtime.build(config, env={"K": "key"})


def requests_written(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("select count(*) from requests").fetchone()[0])


def test_parts_are_closed_in_reverse_build_order(upstream: FakeUpstream, tmp_path: Path) -> None:
    runtime = build(upstream, tmp_path / "ledger.sqlite3")
    assert [part for part, _ in runtime.closers] == ["telemetry", "ledger", "factory", "registry", "names"]


async def test_a_part_failing_to_close_does_not_keep_the_others_open(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    database = tmp_path / "ledger.sqlite3"
    runtime = build(upstream, database)
    closed: list[str] = []

    async def first() -> None:
        closed.append("first")

    async def broken() -> None:
        closed.append("broken")
        raise OSError("the socket was already gone")

    async def last() -> None:
        closed.append("last")

    for name, close in (("first", first), ("broken", broken), ("last", last)):
        runtime.on_close(name, close)
    upstream.script(Reply("ok", usage=(10, 5)))
    await Orchestrator(runtime=runtime).complete("hi", model="fast")

    with pytest.raises(OSError, match="already gone"):
        await runtime.aclose()
    assert closed == ["last", "broken", "first"]  # each once, the last registered first
    assert requests_written(database) == 1  # the ledger (built before the failing part) still flushed


async def test_a_runtime_closes_again_after_being_used_again(upstream: FakeUpstream, tmp_path: Path) -> None:
    database = tmp_path / "ledger.sqlite3"
    orch = Orchestrator(runtime=build(upstream, database))
    upstream.script(Reply("one", usage=(10, 5)), Reply("two", usage=(10, 5)))
    await orch.complete("hi", model="fast")
    await orch.aclose()
    await orch.complete("hi", model="fast")  # parts reopen on use
    await orch.aclose()
    assert requests_written(database) == 2


def test_a_runtime_and_a_config_together_are_refused(upstream: FakeUpstream, tmp_path: Path) -> None:
    runtime = build(upstream, tmp_path / "ledger.sqlite3")
    with pytest.raises(ConfigError, match="not both"):
        Orchestrator(runtime.config, runtime=runtime)
