"""``Orchestrator.stream`` as an async context manager: the handle's result, structural closing, and plain
iteration, over FakeUpstream with the SQLite ledger on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import StreamNotFinishedError
from model_orchestrator.core.events import RecordingSink, RequestFinished
from model_orchestrator.testing import FakeUpstream, Fault, Reply

ENV = {"K": "key"}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
async def orch(upstream: FakeUpstream, tmp_path: Path) -> AsyncIterator[Orchestrator]:
    models = "".join(
        f"  - {{name: {n}, provider: openai, model: m-{n}, api_base: '{upstream.openai_base}', "
        f"api_key_env: K, price: {{input: {p}, output: {2 * p}}}}}\n"
        for n, p in (("first", 1.0), ("second", 3.0))
    )
    ledger = f"ledger: {{url: 'sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}'}}\n"
    retries = "resilience: {retry: {max_attempts: 1}}\n"
    async with Orchestrator(parse_config(f"models:\n{models}{ledger}{retries}"), env=ENV) as o:
        yield o


async def test_the_result_of_a_stream_costs_what_the_ledger_recorded(
    upstream: FakeUpstream, orch: Orchestrator
) -> None:
    upstream.script(Fault.server_error(500), Reply("one two three four", chunk_size=4, usage=(1000, 500)))
    async with orch.stream("count", strategy="fallback", members=["first", "second"]) as stream:
        text = "".join([d.text async for d in stream])
        result = stream.result()
    stats = await orch.costs_stats()
    assert result.response == text == "one two three four"
    assert (result.model_used, result.strategy) == ("second", "fallback")
    assert result.metadata["provider"] == "openai"
    assert str(result.metadata["deployment"]).startswith("second")
    assert result.fallback_chain == ("first", "second")
    assert (result.input_tokens, result.output_tokens) == (1000, 500)
    assert result.metadata["attempts"] == 2
    costs = {c["model"]: c["cost"] for c in result.metadata["attempt_costs"]}  # type: ignore[attr-defined]
    assert costs["second"] == pytest.approx((1000 * 3.0 + 500 * 6.0) / 1e6)
    assert result.cost == pytest.approx(sum(costs.values())) and costs["first"] > 0  # the failed attempt too
    assert result.cost == pytest.approx(stats.totals.cost)
    assert (stats.totals.attempts, stats.requests.ok) == (2, 1)


async def test_a_streamed_result_is_the_one_complete_returns(
    upstream: FakeUpstream, orch: Orchestrator
) -> None:
    upstream.script(Reply("Paris", usage=(20, 10)), Reply("Paris", usage=(20, 10)))
    async with orch.stream("Capital of France?", model="first") as stream:
        async for _ in stream:
            pass
    streamed, whole = stream.result(), await orch.complete("Capital of France?", model="first")
    same = ("response", "model_used", "cost", "input_tokens", "output_tokens", "strategy", "fallback_chain")
    assert {k: getattr(streamed, k) for k in same} == {k: getattr(whole, k) for k in same}
    where = ("provider", "deployment")
    assert {k: streamed.metadata[k] for k in where} == {k: whole.metadata[k] for k in where}


async def test_a_streamed_request_is_published_as_its_result_says(
    upstream: FakeUpstream, orch: Orchestrator
) -> None:
    sink = RecordingSink()
    orch.events.subscribe(sink)
    upstream.script(Reply("Paris", usage=(20, 10)))
    async with orch.stream("Capital of France?", model="first") as stream:
        async for _ in stream:
            pass
    (finished,) = [e for e in sink.events if isinstance(e, RequestFinished)]
    result = stream.result()
    assert (finished.model_used, finished.cost) == (result.model_used, result.cost) == ("first", result.cost)
    assert (finished.input_tokens, finished.output_tokens) == (20, 10)


async def test_leaving_the_block_early_closes_the_upstream_and_records_the_partial_usage(
    upstream: FakeUpstream, orch: Orchestrator
) -> None:
    upstream.script(Reply("a long answer " * 20, chunk_size=4, chunk_delay=0.05, usage=(1000, 500)))
    async with orch.stream("talk", model="first") as stream:
        async for delta in stream:
            if delta.text:
                break
    assert (await upstream.await_finished(1))[0].disconnected
    with pytest.raises(StreamNotFinishedError, match="has not ended"):
        stream.result()
    stats = await orch.costs_stats()
    assert (stats.totals.attempts, stats.totals.cancelled, stats.totals.estimated) == (1, 1, 1)
    assert stats.totals.input_tokens > 0 and stats.totals.output_tokens > 0 and stats.totals.cost > 0
    assert (stats.requests.cancelled, stats.requests.unfinished) == (1, 0)


@pytest.mark.parametrize("strategy", [None, "route"])
async def test_leaving_early_closes_every_layer_before_the_block_is_left(
    upstream: FakeUpstream, orch: Orchestrator, strategy: str | None
) -> None:
    # Closing is structural: each layer closes the stream it reads, so by the time the block is left the
    # attempt has been reported cancelled (an abandoned inner generator would close on a later loop turn).
    sink = RecordingSink()
    orch.events.subscribe(sink)
    upstream.script(Reply("a long answer " * 20, chunk_size=4, chunk_delay=0.05, usage=(1000, 500)))
    members = ["first", "second"] if strategy else None
    async with orch.stream(
        "talk", model=None if strategy else "first", strategy=strategy, members=members
    ) as s:
        async for delta in s:
            if delta.text:
                break
    assert [type(e).__name__ for e in sink.events if type(e).__name__ == "AttemptFailed"] == ["AttemptFailed"]


async def test_the_result_is_refused_while_deltas_remain(upstream: FakeUpstream, orch: Orchestrator) -> None:
    upstream.script(Reply("one two three four", chunk_size=4))
    async with orch.stream("count", model="first") as stream:
        await anext(stream)
        assert not stream.finished
        with pytest.raises(StreamNotFinishedError, match="read every delta first"):
            stream.result()
        async for _ in stream:
            pass
        assert stream.finished and stream.result().response == "one two three four"


async def test_plain_iteration_still_works_and_closes_at_the_end(
    upstream: FakeUpstream, orch: Orchestrator
) -> None:
    upstream.script(Reply("one two three four", chunk_size=4, usage=(10, 4)))
    stream = orch.stream("count", model="first")
    assert "".join([d.text async for d in stream]) == "one two three four"
    assert stream.result().output_tokens == 4
    assert not (await upstream.await_finished(1))[0].disconnected
    assert (await orch.costs_stats()).requests.ok == 1
