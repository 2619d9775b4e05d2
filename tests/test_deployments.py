"""One model served by several deployments: round-robin, per-deployment cooldowns honoured, keys per
deployment, and the model's name kept in the answer."""

from __future__ import annotations

import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import MissingCredentialsError
from model_orchestrator.core.events import RecordingSink, RetryScheduled
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault


def config(east: FakeUpstream, west: FakeUpstream) -> str:
    return f"""
models:
  - name: gpt
    provider: openai
    model: m
    price: {{input: 1, output: 1}}
    deployments:
      - {{api_base: "{east.openai_base}", api_key_env: EAST_KEY}}
      - {{api_base: "{west.openai_base}", api_key_env: WEST_KEY}}
resilience:
  retry: {{max_attempts: 2, max_retry_after: 0.1}}
"""


async def test_requests_rotate_over_deployments_and_keep_the_model_name() -> None:
    with FakeUpstream() as east, FakeUpstream() as west:
        async with Orchestrator(
            parse_config(config(east, west)), env={"EAST_KEY": "e", "WEST_KEY": "w"}
        ) as orch:
            results = [await orch.complete("hi", model="gpt") for _ in range(4)]
        assert {r.model_used for r in results} == {"gpt"}
        assert len(east.requests) == 2 and len(west.requests) == 2
        assert east.requests[0].headers["authorization"] == "Bearer e"
        assert west.requests[0].headers["authorization"] == "Bearer w"
        served = {r.metadata["explanation"]["reason"] for r in results}  # type: ignore[index]
        assert any("#1" in s for s in served) and any("#2" in s for s in served)


SHORT_RETRY = "{max_attempts: 2, max_retry_after: 0.1}"


@pytest.mark.parametrize("retry", [SHORT_RETRY, "{}"], ids=["short", "defaults"])
async def test_a_retry_after_on_one_deployment_is_honoured_while_the_other_serves(retry: str) -> None:
    with FakeUpstream() as east, FakeUpstream() as west:
        east.script(Fault.rate_limited(retry_after=2.0))
        clock, sink = FakeClock(), RecordingSink()
        text = config(east, west).replace(SHORT_RETRY, retry)
        async with Orchestrator(
            parse_config(text), env={"EAST_KEY": "e", "WEST_KEY": "w"}, clock=clock
        ) as orch:
            orch.events.subscribe(sink)
            results = [await orch.complete(f"q{i}", model="gpt") for i in range(6)]
        assert all(r.response == "ok" for r in results)
        # No request waited: the 429 went straight to the other deployment, and the cooldown kept the
        # later requests off east (the fake clock never stood still for anyone).
        assert clock.sleeps == [] and sink.of_type(RetryScheduled) == []
        assert len(east.requests) == 1  # only the 429: east was skipped for its retry-after
        assert len(west.requests) == 6


async def test_a_deployment_without_its_key_is_left_out() -> None:
    with FakeUpstream() as east, FakeUpstream() as west:
        async with Orchestrator(parse_config(config(east, west)), env={"WEST_KEY": "w"}) as orch:
            infos = {i.name: i for i in orch.models()}
            assert infos["gpt"].usable
            for _ in range(3):
                await orch.complete("hi", model="gpt")
        assert not east.requests and len(west.requests) == 3
        async with Orchestrator(parse_config(config(east, west)), env={}) as orch:
            with pytest.raises(MissingCredentialsError, match="no deployment is usable"):
                await orch.complete("hi", model="gpt")


async def test_a_streamed_answer_is_explained_as_the_balanced_model_as_a_whole_one_is() -> None:
    with FakeUpstream() as east, FakeUpstream() as west:
        async with Orchestrator(
            parse_config(config(east, west)), env={"EAST_KEY": "e", "WEST_KEY": "w"}
        ) as orch:
            whole = await orch.complete("hi", model="gpt")
            async with orch.stream("hi", model="gpt") as stream:
                text = "".join([delta.text async for delta in stream])
            streamed = stream.result()
        assert text == streamed.response == whole.response
        assert whole.model_used == streamed.model_used == "gpt"
        explanations = [r.metadata["explanation"] for r in (whole, streamed)]
        assert [(e["strategy"], e["chosen"]) for e in explanations] == [("balanced", "gpt")] * 2  # type: ignore[index]
        steps = [e["steps"] for e in explanations]  # type: ignore[index]
        assert [len(s) for s in steps] == [1, 1] and steps[0][0]["model"] != steps[1][0]["model"]
        served = [f"served by {s[0]['model']}" for s in steps]
        assert [e["reason"] for e in explanations] == served  # type: ignore[index]
