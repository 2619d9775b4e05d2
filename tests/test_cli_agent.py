"""CliAgentModel against real small executables written into tmp_path (Python scripts with a shebang)."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from pathlib import Path

import pytest

from model_orchestrator.core.errors import (
    ConfigError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
)
from model_orchestrator.core.messages import Message
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import FinishReason
from model_orchestrator.providers.cli_agent import PRESETS, CliAgentModel

ECHO = "import sys\nsys.stdout.write(sys.stdin.read())\n"


def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def _printing(tmp_path: Path, output: str) -> str:
    """A command that ignores its input and prints ``output``."""
    data = tmp_path / "output.txt"
    data.write_text(output)
    return _script(tmp_path, "printer", f"import sys\nsys.stdin.read()\nprint(open({str(data)!r}).read())\n")


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie awaiting an absent reaper counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, within: float = 5.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


async def test_prompt_goes_to_stdin_with_system_text_first(tmp_path: Path) -> None:
    model = CliAgentModel(name="echo", command=[_script(tmp_path, "echo", ECHO)])
    request = ChatRequest.from_prompt("What is 2+2?", system="Be brief.")

    completion = await model.complete(request)

    assert completion.text == "Be brief.\n\nWhat is 2+2?"
    assert completion.finish_reason is FinishReason.STOP
    assert completion.usage.estimated and completion.usage.input_tokens > 0
    assert (completion.model, completion.provider, completion.deployment) == ("echo", "cli", "cli:echo")


async def test_multi_turn_conversation_is_labelled(tmp_path: Path) -> None:
    model = CliAgentModel(name="echo", command=[_script(tmp_path, "echo", ECHO)])
    request = ChatRequest(messages=(Message.user("hi"), Message.assistant("hello"), Message.user("bye")))

    completion = await model.complete(request)

    assert completion.text == "User: hi\n\nAssistant: hello\n\nUser: bye"


async def test_prompt_is_not_in_argv(tmp_path: Path) -> None:
    argv_file = tmp_path / "argv.json"
    body = f"import json, sys\nsys.stdin.read()\njson.dump(sys.argv, open({str(argv_file)!r}, 'w'))\n"
    model = CliAgentModel(name="argv", command=[_script(tmp_path, "argv", body), "--flag"])

    await model.complete(ChatRequest.from_prompt("secret-prompt-text"))

    argv = json.loads(argv_file.read_text())
    assert argv[1:] == ["--flag"]
    assert not any("secret-prompt-text" in arg for arg in argv)


async def test_stream_text_equals_complete_text(tmp_path: Path) -> None:
    body = "import sys\nsys.stdin.read()\nprint('line one  ')\nprint()\nprint('line two')\nprint()\n"
    model = CliAgentModel(name="lines", command=[_script(tmp_path, "lines", body)])
    request = ChatRequest.from_prompt("go")

    deltas = [d async for d in model.stream(request)]
    completion = await model.complete(request)

    assert "".join(d.text for d in deltas) == completion.text == "line one  \n\nline two"
    assert len(deltas) == 3
    assert deltas[-1].finish_reason is FinishReason.STOP
    assert deltas[-1].usage is not None and deltas[-1].usage.estimated


async def test_claude_json_result_reports_usage_and_cost(tmp_path: Path) -> None:
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "Paris.",
        "session_id": "sess-1",
        "total_cost_usd": 0.0123,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 5},
    }
    model = CliAgentModel(
        name="claude", command=[_printing(tmp_path, json.dumps(result))], output_format="json"
    )

    completion = await model.complete(ChatRequest.from_prompt("Capital of France?"))

    assert completion.text == "Paris."
    assert completion.usage.input_tokens == 100
    assert completion.usage.cached_input_tokens == 90
    assert completion.usage.output_tokens == 5
    assert not completion.usage.estimated
    assert completion.response_id == "sess-1"
    assert ("reported_cost_usd", 0.0123) in completion.details


async def test_json_stream_is_one_delta(tmp_path: Path) -> None:
    result = {"type": "result", "is_error": False, "result": "ok", "usage": {"input_tokens": 1}}
    model = CliAgentModel(name="c", command=[_printing(tmp_path, json.dumps(result))], output_format="json")

    deltas = [d async for d in model.stream(ChatRequest.from_prompt("x"))]

    assert [d.text for d in deltas] == ["ok"]
    assert deltas[0].finish_reason is FinishReason.STOP and deltas[0].usage is not None


async def test_gemini_json_sums_model_tokens(tmp_path: Path) -> None:
    output = {
        "response": "Paris",
        "stats": {"models": {"gemini-2.5-flash": {"tokens": {"prompt": 20, "candidates": 3, "thoughts": 7}}}},
    }
    model = CliAgentModel(name="g", command=[_printing(tmp_path, json.dumps(output))], output_format="json")

    completion = await model.complete(ChatRequest.from_prompt("x"))

    assert completion.text == "Paris"
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (20, 10)
    assert completion.usage.reasoning_tokens == 7


async def test_codex_jsonl_takes_last_agent_message(tmp_path: Path) -> None:
    events = [
        {"type": "thread.started", "thread_id": "t1"},
        {"type": "item.completed", "item": {"id": "0", "type": "reasoning", "text": "thinking"}},
        {"type": "item.completed", "item": {"id": "1", "type": "agent_message", "text": "Paris"}},
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 50, "cached_input_tokens": 40, "output_tokens": 2},
        },
    ]
    output = "\n".join(json.dumps(e) for e in events)
    model = CliAgentModel(name="codex", command=[_printing(tmp_path, output)], output_format="json")

    completion = await model.complete(ChatRequest.from_prompt("x"))

    assert completion.text == "Paris"
    assert (completion.usage.input_tokens, completion.usage.cached_input_tokens) == (50, 40)


async def test_unrecognised_json_falls_back_to_text(tmp_path: Path) -> None:
    model = CliAgentModel(name="j", command=[_printing(tmp_path, "just words")], output_format="json")

    completion = await model.complete(ChatRequest.from_prompt("x"))

    assert completion.text == "just words"
    assert completion.usage.estimated


async def test_reported_error_in_json_raises(tmp_path: Path) -> None:
    result = {"type": "result", "is_error": True, "result": "API Error: 529 overloaded"}
    model = CliAgentModel(name="c", command=[_printing(tmp_path, json.dumps(result))], output_format="json")

    with pytest.raises(ServerError, match="529 overloaded"):
        await model.complete(ChatRequest.from_prompt("x"))


async def test_nonzero_exit_has_redacted_stderr_tail(tmp_path: Path) -> None:
    body = """\
        import sys
        sys.stdin.read()
        for i in range(50):
            print(f"noise {i}", file=sys.stderr)
        print("auth failed for tok-abcdef123456 and sk-live1234567890abcdef", file=sys.stderr)
        sys.exit(3)
        """
    command = _script(tmp_path, "failing-tool", body)
    model = CliAgentModel(name="f", command=[command], env={"MY_SERVICE_TOKEN": "tok-abcdef123456"})

    with pytest.raises(ServerError) as caught:
        await model.complete(ChatRequest.from_prompt("x"))

    error = caught.value
    message = str(error)
    assert "failing-tool" in message and "code 3" in message
    assert "tok-abcdef123456" not in message and "sk-live" not in message
    assert "auth failed for [REDACTED] and [REDACTED]" in message
    assert "noise 49" in message and "noise 0\n" not in message
    assert error.retryable is False
    assert "tok-abcdef123456" not in repr(model)


async def test_rate_limit_text_raises_rate_limited(tmp_path: Path) -> None:
    body = (
        "import sys\nsys.stdin.read()\nprint('Error: 429 Too Many Requests', file=sys.stderr)\nsys.exit(1)\n"
    )
    model = CliAgentModel(name="r", command=[_script(tmp_path, "limited", body)])

    with pytest.raises(RateLimitedError) as caught:
        await model.complete(ChatRequest.from_prompt("x"))
    assert caught.value.retryable


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    body = f"""\
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(600)
        """
    model = CliAgentModel(name="hang", command=[_script(tmp_path, "hang", body)], timeout=1.0)

    with pytest.raises(RequestTimeoutError, match="hang"):
        await model.complete(ChatRequest.from_prompt("x"))

    assert _wait_gone(int(pid_file.read_text()))


async def test_closing_a_stream_kills_the_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "tool.pid"
    body = f"""\
        import os, sys, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print("first", flush=True)
        time.sleep(600)
        """
    model = CliAgentModel(name="slow", command=[_script(tmp_path, "slow", body)])

    stream = model.stream(ChatRequest.from_prompt("x"))
    first = await anext(stream)
    await stream.aclose()

    assert first.text == "first"
    assert _wait_gone(int(pid_file.read_text()))


async def test_cancelling_a_call_kills_the_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "tool.pid"
    body = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n"
    model = CliAgentModel(name="slow", command=[_script(tmp_path, "slow", body)])

    task = asyncio.create_task(model.complete(ChatRequest.from_prompt("x")))
    while not pid_file.exists() or not pid_file.read_text():
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert _wait_gone(int(pid_file.read_text()))


async def test_passed_deadline_fails_before_starting(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    body = f"open({str(marker)!r}, 'w').write('yes')\n"
    model = CliAgentModel(name="d", command=[_script(tmp_path, "d", body)])

    with pytest.raises(RequestTimeoutError):
        await model.complete(ChatRequest.from_prompt("x", deadline=time.monotonic() - 1))
    assert not marker.exists()


async def test_missing_command_is_a_config_error() -> None:
    model = CliAgentModel(name="m", command=["no-such-agent-cli-xyz", "-p"])

    with pytest.raises(ConfigError, match="'no-such-agent-cli-xyz' was not found on PATH"):
        await model.complete(ChatRequest.from_prompt("x"))


def test_presets_are_json_argument_lists() -> None:
    assert set(PRESETS) == {"claude", "gemini", "codex"}
    for command, output_format in PRESETS.values():
        assert output_format == "json"
        assert all(" " not in arg for arg in command)  # argument lists, never shell strings
