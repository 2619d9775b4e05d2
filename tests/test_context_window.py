"""Context-window fitting: truncation modes (seed 002), summarisation by a cheap model, the overflow error."""

from __future__ import annotations

import pytest

from model_orchestrator.core.errors import ContextWindowExceededError
from model_orchestrator.core.messages import Message, Role
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.strategies.context_window import (
    SUMMARY_INSTRUCTION,
    SUMMARY_PREFIX,
    TruncationMode,
    fit_messages,
    fit_request,
    message_tokens,
    summarize_messages,
)
from model_orchestrator.testing import ScriptedModel


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
