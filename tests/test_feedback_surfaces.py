"""Feedback from the other front doors: the ``orchestrator_feedback`` MCP tool (through the ``mcp`` SDK)
and ``orchestrator feedback`` (the installed CLI in a subprocess; exit 2 for unknown ids and bad scores)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_orchestrator.testing import FakeUpstream, Reply
from tests.cli_helpers import run_cli
from tests.mcp_helpers import SECRET, data_of, mcp_session, text_of, write_config


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    up = FakeUpstream().start()
    try:
        yield up
    finally:
        up.stop()


async def test_the_mcp_tool_labels_an_executed_answer_and_explains_bad_input(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "orchestrator.yaml", upstream)
    upstream.script(Reply("4"))
    async with mcp_session(config, tmp_path) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        answer = data_of(
            await session.call_tool("orchestrator_execute", {"prompt": "2+2?", "model": "strong"})
        )
        request_id = answer["metadata"]["request_id"]
        label = data_of(
            await session.call_tool("orchestrator_feedback", {"request_id": request_id, "score": 0.5})
        )
        off_scale = await session.call_tool("orchestrator_feedback", {"request_id": request_id, "score": 7})
        unknown = await session.call_tool("orchestrator_feedback", {"request_id": "nope", "score": 1})
    feedback = tools["orchestrator_feedback"]
    assert set(feedback.input_schema["required"]) == {"request_id", "score"}
    assert feedback.annotations is not None and feedback.annotations.read_only_hint is False
    assert label["request_id"] == request_id and label["model"] == "strong" and label["score"] == 0.5
    assert (
        off_scale.is_error and "InvalidFeedbackError" in text_of(off_scale) and "from 0" in text_of(off_scale)
    )
    assert unknown.is_error and "UnknownRequestError" in text_of(unknown)
    assert SECRET not in text_of(off_scale) + text_of(unknown)


def test_the_cli_labels_a_run_and_exits_2_on_unknown_ids_and_bad_scores(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "orchestrator.yaml", upstream)
    env = {"TEST_MCP_KEY": SECRET, "ORCHESTRATOR_HOME": str(tmp_path / "home")}
    upstream.script(Reply("4"))
    run = run_cli("--config", str(config), "run", "--prompt", "2+2?", "--model", "fast", "--json", env=env)
    assert run.returncode == 0, run.stderr
    request_id = json.loads(run.stdout)["metadata"]["request_id"]

    labelled = run_cli("--config", str(config), "feedback", request_id, "1", "--json", env=env)
    unknown = run_cli("--config", str(config), "feedback", "no-such-id", "1", env=env)
    off_scale = run_cli("--config", str(config), "feedback", request_id, "2", env=env)
    not_a_number = run_cli("--config", str(config), "feedback", request_id, "nan", env=env)

    assert labelled.returncode == 0, labelled.stderr
    assert json.loads(labelled.stdout)["model"] == "fast"
    assert unknown.returncode == 2 and "no request 'no-such-id' in the ledger" in unknown.stderr
    assert off_scale.returncode == 2 and "score must be a number from 0" in off_scale.stderr
    assert not_a_number.returncode == 2 and "'nan' is not a finite number" in not_a_number.stderr
    assert "Traceback" not in unknown.stderr + off_scale.stderr + not_a_number.stderr
