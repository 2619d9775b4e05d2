"""Context-window fitting: truncation modes (seed 002), summarisation by a cheap model, the overflow error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import AllModelsFailedError, ConfigError, ContextWindowExceededError
from model_orchestrator.core.messages import Message, Role
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.tools import ToolCall
from model_orchestrator.gateway import Gateway, GatewaySettings
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.strategies.context_fit import REFIT_SHARE
from model_orchestrator.strategies.context_window import (
    CUT_MARKER,
    SUMMARY_INSTRUCTION,
    SUMMARY_PREFIX,
    TruncationMode,
    fit_conversation,
    fit_messages,
    fit_request,
    message_tokens,
    summarize_messages,
)
from model_orchestrator.testing import FakeUpstream, Fault, RecordedRequest, Reply, ScriptedModel
from tests.cli_helpers import run_cli


def count(message: Message) -> int:
    """One token per character keeps the arithmetic visible."""
    return len(message.text)


SYSTEM = Message.system("S" * 10)
# u1 a1 u2 a2 u3 a3 u4 a4 u5, each 10 tokens; u5 is the question being asked.
TURNS = tuple(
    Message.of(
        "user" if i % 2 == 0 else "assistant", f"{'u' if i % 2 == 0 else 'a'}{i // 2 + 1}".ljust(10, ".")
    )
    for i in range(9)
)
CONVERSATION = (SYSTEM, *TURNS)


def labels(messages: tuple[Message, ...]) -> list[str]:
    return [m.text.rstrip(".") for m in messages]


def fit(window: int, mode: TruncationMode, messages: tuple[Message, ...] = CONVERSATION) -> list[str]:
    fitted = fit_messages(messages, context_window=window, reserved_output=20, mode=mode, count=count)
    return labels(fitted)


@pytest.mark.parametrize("mode", ["smart", "start", "end", "middle"])
def test_everything_fits_so_nothing_changes(mode: TruncationMode) -> None:
    assert fit(120, mode) == labels(CONVERSATION)


def test_start_drops_the_oldest_turns() -> None:
    # 70 tokens allowed: the system message and the question (20) leave 50 for the newest five turns.
    assert fit(90, "start") == ["SSSSSSSSSS", "a2", "u3", "a3", "u4", "a4", "u5"]


def test_end_drops_the_newest_turns_but_keeps_the_question() -> None:
    assert fit(90, "end") == ["SSSSSSSSSS", "u1", "a1", "u2", "a2", "u3", "u5"]


@pytest.mark.parametrize(
    ("window", "kept"),
    [(90, ["u1", "a1", "u2", "u4", "a4"]), (70, ["u1", "a1", "a4"]), (60, ["u1", "a4"])],
)
def test_middle_keeps_the_first_and_last_turns(window: int, kept: list[str]) -> None:
    assert fit(window, "middle") == ["SSSSSSSSSS", *kept, "u5"]


def test_smart_keeps_the_last_three_user_turns_and_the_last_assistant_turn() -> None:
    # Everything smart selects (u3, u4, a4, and the question u5) fits, though older turns would too.
    assert fit(90, "smart") == ["SSSSSSSSSS", "u3", "u4", "a4", "u5"]


def test_smart_then_drops_the_oldest_of_its_selection() -> None:
    assert fit(60, "smart") == ["SSSSSSSSSS", "u4", "a4", "u5"]


def test_every_system_message_stays() -> None:
    messages = (SYSTEM, *TURNS[:4], Message.system("rules....."), *TURNS[4:])
    kept = fit(60, "start", messages)
    assert kept[0] == "SSSSSSSSSS" and "rules" in kept


def test_only_the_question_left_when_room_is_tight() -> None:
    assert fit(40, "start") == ["SSSSSSSSSS", "u5"]


def test_overflow_when_even_the_question_cannot_fit() -> None:
    with pytest.raises(ContextWindowExceededError, match="larger context window") as caught:
        fit(39, "smart")
    assert "need about 20 tokens" in str(caught.value) and "leaves 19" in str(caught.value)


def test_last_message_is_kept_when_there_is_no_user_turn() -> None:
    messages = (SYSTEM, Message.assistant("a" * 30), Message.assistant("b" * 10))
    assert fit(40, "start", messages) == ["SSSSSSSSSS", "b" * 10]


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown truncation mode"):
        fit(90, "random")  # type: ignore[arg-type]


def test_default_counter_uses_the_core_estimate() -> None:
    assert message_tokens(Message.user("x" * 40)) == 14  # 10 tokens of text + 4 of message overhead


def test_fit_request_cuts_to_the_profile_window() -> None:
    request = ChatRequest(messages=(SYSTEM, *TURNS), max_tokens=20)
    profile = ModelProfile(name="small", context_window=60)
    fitted = fit_request(request, profile, mode="start")
    assert profile.fits(fitted) and fitted.messages[-1] == TURNS[-1]
    assert fitted.max_tokens == 20 and len(fitted.messages) < len(request.messages)


def test_fit_request_leaves_fitting_and_unknown_windows_alone() -> None:
    request = ChatRequest(messages=CONVERSATION, max_tokens=20)
    assert fit_request(request, ModelProfile(name="big", context_window=100_000)) is request
    assert fit_request(request, ModelProfile(name="unknown")) is request


# --- summarising older turns ----------------------------------------------------------------------


LONG = (
    SYSTEM,
    *(Message(m.role, m.parts) for m in (Message.of(t.role, t.text.ljust(20, ".")) for t in TURNS)),
)


async def test_summary_replaces_the_older_turns() -> None:
    summarizer = ScriptedModel(["  They talked about u1 to a3.  "], name="cheap")
    fitted = await summarize_messages(
        LONG,
        summarizer,
        context_window=160,
        reserved_output=20,
        summary_tokens=30,
        count=count,
        request_id="req-1",
    )
    # 140 allowed: system and question (30) and the summary (30 + its 37-character prefix) leave 43: u4, a4.
    assert [m.role for m in fitted[:2]] == [Role.SYSTEM, Role.SYSTEM]
    assert fitted[1].text == SUMMARY_PREFIX + "They talked about u1 to a3."
    assert labels(fitted[2:]) == ["u4", "a4", "u5"]
    assert sum(count(m) for m in fitted) <= 140
    (sent,) = summarizer.requests
    assert sent.messages[0].text == SUMMARY_INSTRUCTION
    assert sent.messages[1].text.splitlines() == [f"{m.role.value}: {m.text}" for m in LONG[1:7]]
    assert (sent.max_tokens, sent.temperature, sent.request_id) == (30, 0.0, "req-1")


async def test_no_summary_when_everything_fits() -> None:
    summarizer = ScriptedModel([])
    fitted = await summarize_messages(
        CONVERSATION, summarizer, context_window=200, reserved_output=20, count=count
    )
    assert fitted == CONVERSATION and summarizer.requests == []


async def test_no_summary_is_paid_for_when_the_question_cannot_fit() -> None:
    summarizer = ScriptedModel(["never"])
    with pytest.raises(ContextWindowExceededError):
        await summarize_messages(CONVERSATION, summarizer, context_window=30, reserved_output=20, count=count)
    assert summarizer.requests == []


@pytest.mark.parametrize("summary_length", [60, 200])
async def test_too_long_a_summary_still_ends_within_the_window(summary_length: int) -> None:
    summarizer = ScriptedModel(["x" * summary_length])
    fitted = await summarize_messages(
        LONG, summarizer, context_window=160, reserved_output=20, summary_tokens=30, count=count
    )
    assert sum(count(m) for m in fitted) <= 140
    assert fitted[0] == SYSTEM and fitted[-1] == LONG[-1]
    # A summary that fits only without the turns it left verbatim replaces them; one that cannot fit at
    # all is dropped in favour of the plain cut.
    assert (fitted[1].text.startswith(SUMMARY_PREFIX)) is (summary_length == 60)


async def test_when_no_room_for_a_summary_nothing_older_is_summarised_needlessly() -> None:
    messages = (SYSTEM, Message.user("u" * 70))
    summarizer = ScriptedModel([])
    fitted = await summarize_messages(
        messages, summarizer, context_window=100, reserved_output=20, count=count
    )
    assert fitted == messages and summarizer.requests == []


# --- cutting inside the last message (a long single prompt) -----------------------------------------

PROMPT = "HEAD " + "x" * 90 + " TAIL"  # 100 tokens at one a character


@pytest.mark.parametrize(
    ("mode", "starts", "ends"),
    [("start", False, True), ("end", True, False), ("middle", True, True), ("smart", True, True)],
)
def test_a_question_too_long_for_the_window_is_cut_inside(
    mode: TruncationMode, starts: bool, ends: bool
) -> None:
    fitted = fit_conversation(
        (SYSTEM, Message.user(PROMPT)),
        context_window=60,
        reserved_output=20,
        mode=mode,
        count=count,
        cut_text=True,
    )
    system, question = fitted.messages
    assert system == SYSTEM and sum(count(m) for m in fitted.messages) == 40
    assert question.text.startswith("HEAD") is starts and question.text.endswith("TAIL") is ends
    assert (CUT_MARKER in question.text) is (mode in ("middle", "smart"))
    kept = len(question.text) - (len(CUT_MARKER) if CUT_MARKER in question.text else 0)
    assert fitted.cut_characters == len(PROMPT) - kept and fitted.dropped_messages == 0


def test_cutting_inside_drops_the_other_turns_first() -> None:
    fitted = fit_conversation(
        (*CONVERSATION, Message.user(PROMPT)),
        context_window=60,
        reserved_output=20,
        count=count,
        cut_text=True,
    )
    assert fitted.messages[0] == SYSTEM and len(fitted.messages) == 2
    assert fitted.dropped_messages == len(TURNS) and fitted.cut_characters > 0


def test_system_messages_are_never_cut() -> None:
    with pytest.raises(ContextWindowExceededError, match="system messages and the last user message"):
        fit_conversation(
            (Message.system("S" * 50), Message.user("hi")),
            context_window=60,
            reserved_output=20,
            count=count,
            cut_text=True,
        )


def test_whole_message_fitting_never_cuts_inside() -> None:
    with pytest.raises(ContextWindowExceededError):
        fit_messages((SYSTEM, Message.user(PROMPT)), context_window=60, reserved_output=20, count=count)


# --- the overflow setting on real models (FakeUpstream) ------------------------------------------------

ENV = {"UP_KEY": "upstream-secret"}
LONG_PROMPT = "HEAD " + "x" * 2000 + " TAIL"  # about 507 tokens: more than small's 300-token window


def overflow_config(up: FakeUpstream) -> str:
    base = up.openai_base
    row = f"provider: openai, api_base: '{base}', api_key_env: UP_KEY, max_output_tokens: 50"
    return f"""
models:
  - {{name: small, model: m-small, context_window: 300, {row}, price: {{input: 1, output: 2}}}}
  - {{name: big, model: m-big, context_window: 4000, {row}, price: {{input: 1, output: 2}}}}
  - {{name: cutter, model: m-cut, context_window: 300, {row}, context: {{overflow: truncate-end}}}}
  - {{name: summed, model: m-sum, context_window: 300, {row},
      context: {{overflow: summarize, summarizer: big}}}}
strategies:
  - {{name: safe, type: fallback, chain: [small, big], context: {{overflow: truncate-start}}}}
  - {{name: plain, type: fallback, chain: [small, big]}}
resilience: {{retry: {{max_attempts: 1}}}}
ledger: {{enabled: false}}
"""


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def orchestrator(up: FakeUpstream) -> Orchestrator:
    return Orchestrator(parse_config(overflow_config(up)), env=ENV)


def sent_text(recorded: RecordedRequest) -> str:
    return "\n".join(str(m["content"]) for m in recorded.json["messages"])


async def test_a_model_refuses_an_overflowing_prompt_before_sending_by_default(
    upstream: FakeUpstream,
) -> None:
    async with orchestrator(upstream) as orch:
        with pytest.raises(ContextWindowExceededError) as caught:
            await orch.complete(LONG_PROMPT, model="small")
    message = str(caught.value)
    assert "about 507 tokens plus 50 reserved" in message and "context window of 300 tokens" in message
    assert "context overflow setting: error" in message and "truncate-start" in message
    assert "--context-overflow" in message and caught.value.status_code == 400
    assert upstream.requests == []


async def test_a_configured_truncation_cuts_and_explains(upstream: FakeUpstream) -> None:
    upstream.script(Reply("ok"))
    async with orchestrator(upstream) as orch:
        result = await orch.complete(LONG_PROMPT, model="cutter")
    (sent,) = upstream.requests
    assert sent_text(sent).startswith("HEAD") and "TAIL" not in sent_text(sent)
    context = result.metadata["explanation"]["context"]  # type: ignore[index]
    assert context["overflow"] == "truncate-end" and context["context_window"] == 300
    assert context["cut_characters"] > 0 and context["estimated_prompt_tokens_sent"] <= 250
    assert "characters cut from the last message" in context["summary"]
    assert result.model_used == "cutter" and result.fallback_chain == ("cutter",)


async def test_the_request_setting_overrides_the_model_setting(upstream: FakeUpstream) -> None:
    upstream.script(Reply("ok"))
    async with orchestrator(upstream) as orch:
        result = await orch.complete(LONG_PROMPT, model="small", context_overflow="truncate-start")
    assert sent_text(upstream.requests[0]).endswith("TAIL")
    assert result.metadata["explanation"]["context"]["overflow"] == "truncate-start"  # type: ignore[index]


async def test_smart_keeps_the_recent_turns(upstream: FakeUpstream) -> None:
    upstream.script(Reply("ok"))
    turns = [Message.of("user" if i % 2 == 0 else "assistant", f"turn{i} " + "y" * 300) for i in range(9)]
    async with orchestrator(upstream) as orch:
        result = await orch.complete(turns, model="small", context_overflow="smart")
    contents = [m["content"] for m in upstream.requests[0].json["messages"]]
    assert contents[-1].startswith("turn8") and not any(c.startswith("turn0") for c in contents)
    assert result.metadata["explanation"]["context"]["dropped_messages"] >= 6  # type: ignore[index]


async def test_summarize_asks_the_configured_summarizer_first(upstream: FakeUpstream) -> None:
    upstream.script(Reply("They compared two plans."), Reply("Plan B."))
    history = [Message.of("user" if i % 2 == 0 else "assistant", f"turn{i} " + "z" * 400) for i in range(5)]
    async with orchestrator(upstream) as orch:
        result = await orch.complete([*history, Message.user("Which plan?")], model="summed")
    summary_call, answer_call = upstream.requests
    assert summary_call.json["model"] == "m-big" and "turn0" in sent_text(summary_call)
    assert answer_call.json["model"] == "m-sum"
    assert SUMMARY_PREFIX + "They compared two plans." in sent_text(answer_call)
    assert answer_call.json["messages"][-1]["content"] == "Which plan?"
    context = result.metadata["explanation"]["context"]  # type: ignore[index]
    assert context["overflow"] == "summarize" and context["summarized_messages"] == 5
    assert result.metadata["attempts"] == 2  # the summary is a paid call of the same request


async def test_a_strategy_cuts_to_its_largest_member_window(upstream: FakeUpstream) -> None:
    upstream.script(Reply("ok"))
    huge = "HEAD " + "x" * 20_000 + " TAIL"
    async with orchestrator(upstream) as orch:
        result = await orch.complete(huge, model="safe")
    (sent,) = upstream.requests  # small was skipped (too small); big got the cut prompt
    assert sent.json["model"] == "m-big" and sent_text(sent).endswith("TAIL")
    assert result.model_used == "big"
    context = result.metadata["explanation"]["context"]  # type: ignore[index]
    assert context["overflow"] == "truncate-start" and context["context_window"] == 4000


async def test_a_named_strategy_without_a_setting_follows_the_request_setting(upstream: FakeUpstream) -> None:
    upstream.script(Reply("ok"))
    huge = "HEAD " + "x" * 20_000 + " TAIL"
    async with orchestrator(upstream) as orch:
        with pytest.raises(AllModelsFailedError):
            await orch.complete(huge, model="plain")
        result = await orch.complete(huge, model="plain", context_overflow="truncate-end")
    (sent,) = upstream.requests
    assert sent.json["model"] == "m-big" and sent_text(sent).startswith("HEAD")
    assert result.metadata["explanation"]["context"]["context_window"] == 4000  # type: ignore[index]


async def test_an_inline_strategy_follows_the_request_setting(upstream: FakeUpstream) -> None:
    upstream.script(Reply("ok"))
    huge = "HEAD " + "x" * 20_000 + " TAIL"
    async with orchestrator(upstream) as orch:
        with pytest.raises(AllModelsFailedError):
            await orch.complete(huge, strategy="fallback", members=["small", "big"])
        result = await orch.complete(
            huge, strategy="fallback", members=["small", "big"], context_overflow="truncate-middle"
        )
    (sent,) = upstream.requests
    assert (
        sent_text(sent).startswith("HEAD")
        and sent_text(sent).endswith("TAIL")
        and CUT_MARKER in sent_text(sent)
    )
    assert result.metadata["explanation"]["context"]["overflow"] == "truncate-middle"  # type: ignore[index]


async def test_a_stream_is_cut_too_and_its_last_piece_explains(upstream: FakeUpstream) -> None:
    upstream.script(Reply("fine answer"))
    async with orchestrator(upstream) as orch:
        deltas = [d async for d in orch.stream(LONG_PROMPT, model="small", context_overflow="truncate-end")]
    assert "".join(d.text for d in deltas) == "fine answer"
    assert "TAIL" not in sent_text(upstream.requests[0])
    explained = [d.explanation for d in deltas if d.explanation is not None]
    assert explained and dict(explained[-1].facts)["context"]["overflow"] == "truncate-end"  # type: ignore[index]


async def test_an_unknown_setting_is_a_config_error(upstream: FakeUpstream) -> None:
    async with orchestrator(upstream) as orch:
        with pytest.raises(ConfigError, match="unknown context overflow setting 'drop'"):
            await orch.complete(LONG_PROMPT, model="small", context_overflow="drop")
    with pytest.raises(ConfigError, match="overflow"):
        parse_config("models:\n  - {name: m, provider: local, context: {overflow: drop}}\n")


# --- the CLI flag and the gateway field ---------------------------------------------------------------


@pytest.mark.subprocess
def test_the_cli_refuses_by_default_and_cuts_with_the_flag(upstream: FakeUpstream, tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.yaml"
    path.write_text(overflow_config(upstream))
    args = ("--config", str(path), "run", "-m", "small", "--prompt", LONG_PROMPT, "--json")
    refused = run_cli(*args, env=ENV)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "ContextWindowExceededError" in refused.stderr and "context window of 300 tokens" in refused.stderr
    assert "--context-overflow" in refused.stderr and upstream.requests == []

    upstream.script(Reply("cut and answered"))
    cut = run_cli(*args, "--context-overflow", "truncate-start", env=ENV)
    assert cut.returncode == 0, cut.stderr
    data = json.loads(cut.stdout)
    assert data["response"] == "cut and answered"
    assert data["metadata"]["explanation"]["context"]["overflow"] == "truncate-start"
    assert sent_text(upstream.requests[0]).endswith("TAIL")


@pytest.mark.subprocess
def test_the_cli_refuses_an_unknown_setting() -> None:
    result = run_cli("run", "-m", "small", "--prompt", "hi", "--context-overflow", "drop")
    assert result.returncode == 2 and "Invalid value for '--context-overflow'" in result.stderr


async def test_the_gateway_answers_400_or_cuts_as_the_request_asks(upstream: FakeUpstream) -> None:
    orch = Orchestrator(parse_config(overflow_config(upstream)), env=ENV)
    gateway = Gateway(orch, GatewaySettings(port=0, auth=False))
    await gateway.start()
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=20)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": LONG_PROMPT}]
    try:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="small", messages=messages)
        assert (
            caught.value.code == "context_length_exceeded" and "context window of 300" in caught.value.message
        )
        assert upstream.requests == []

        upstream.script(Reply("cut and answered"))
        answer = await client.chat.completions.create(
            model="small",
            messages=messages,
            extra_body={"orchestrator": {"context_overflow": "truncate-end"}},
        )
        assert answer.choices[0].message.content == "cut and answered"
        assert sent_text(upstream.requests[0]).startswith("HEAD") and "TAIL" not in sent_text(
            upstream.requests[0]
        )

        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model="small", messages=messages, extra_body={"orchestrator": {"context_overflow": "drop"}}
            )
    finally:
        await client.close()
        await gateway.stop()


async def test_a_cutting_setting_cuts_harder_when_the_provider_refuses_what_the_estimate_let_through(
    upstream: FakeUpstream,
) -> None:
    fits_by_estimate = "HEAD " + "x" * 790 + " TAIL"  # about 204 tokens + 50 reserved: under 300
    upstream.script(Fault.context_length(), Reply("ok"))
    async with orchestrator(upstream) as orch:
        result = await orch.complete(fits_by_estimate, model="cutter")
    refused, accepted = upstream.requests
    assert sent_text(refused) == fits_by_estimate
    assert sent_text(accepted).startswith("HEAD") and len(sent_text(accepted)) < len(fits_by_estimate)
    context = result.metadata["explanation"]["context"]  # type: ignore[index]
    assert context["refit_after_refusal"] is True and context["context_window"] == int(300 * REFIT_SHARE)


async def test_the_error_setting_passes_the_provider_refusal_on(upstream: FakeUpstream) -> None:
    upstream.script(Fault.context_length(), Reply("never"))
    async with orchestrator(upstream) as orch:
        with pytest.raises(ContextWindowExceededError):
            await orch.complete("short enough by the estimate", model="small")
        deltas = orch.stream("short enough by the estimate", model="cutter")
        assert "".join([d.text async for d in deltas]) == "never"
    assert len(upstream.requests) == 2  # no second try for error; the stream was not refused


async def test_a_stream_refused_before_its_first_piece_is_cut_harder(upstream: FakeUpstream) -> None:
    fits_by_estimate = "HEAD " + "x" * 790 + " TAIL"
    upstream.script(Fault.context_length(), Reply("streamed"))
    async with orchestrator(upstream) as orch:
        deltas = [d async for d in orch.stream(fits_by_estimate, model="cutter")]
    assert "".join(d.text for d in deltas) == "streamed"
    assert len(sent_text(upstream.requests[1])) < len(fits_by_estimate)


@pytest.mark.parametrize(
    ("config", "where"),
    [
        (
            "models:\n  - {name: m, provider: local, context: {overflow: summarize, summarizer: nobody}}\n",
            "model 'm'",
        ),
        (
            "strategies:\n  - {name: s, type: fallback, chain: [local/smollm2-135m],"
            " context: {overflow: summarize, summarizer: nobody}}\n",
            "strategy 's'",
        ),
    ],
)
def test_an_unknown_summarizer_is_refused_at_start_up(config: str, where: str) -> None:
    with pytest.raises(ConfigError, match=f"{where}: context.summarizer: unknown model 'nobody'"):
        Orchestrator(parse_config(config), env={})


@pytest.mark.parametrize("mode", ["start", "end", "middle", "smart"])
def test_a_tool_call_and_its_results_are_kept_or_dropped_together(mode: str) -> None:
    long = "word " * 400
    messages = (
        Message.system("be brief"),
        Message.user("first question " + long),
        Message.assistant("", (ToolCall("c1", "lookup", "{}"),)),
        Message.tool_result("c1", "first result " + long),
        Message.assistant("", (ToolCall("c2", "lookup", "{}"), ToolCall("c3", "lookup", "{}"))),
        Message.tool_result("c2", "second result " + long),
        Message.tool_result("c3", "third result"),
        Message.user("and now?"),
    )
    fitted = fit_conversation(messages, context_window=700, reserved_output=100, mode=mode).messages
    assert len(fitted) < len(messages)
    calls = {c.id for m in fitted for c in m.tool_calls}
    answered = {m.tool_call_id for m in fitted if m.tool_call_id is not None}
    assert calls == answered  # no result without its call, no call without all its results


async def test_a_stream_under_a_cutting_setting_is_refitted_after_a_refusal_too(
    upstream: FakeUpstream,
) -> None:
    fits_by_estimate = "HEAD " + "x" * 790 + " TAIL"
    upstream.script(Fault.context_length(), Reply("ok"))
    async with orchestrator(upstream) as orch, orch.stream(fits_by_estimate, model="cutter") as stream:
        assert "".join([d.text async for d in stream]) == "ok"
    refused, accepted = upstream.requests
    assert sent_text(refused) == fits_by_estimate
    assert sent_text(accepted).startswith("HEAD") and len(sent_text(accepted)) < len(fits_by_estimate)
