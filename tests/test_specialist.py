"""Specialist routing (seed 001): rule matching, routing with its explanation, and ``Conversation``
carrying history across turns inside a context window."""

from __future__ import annotations

import pytest

from model_orchestrator.core.errors import ConfigError, ContextWindowExceededError, ServerError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.messages import Message
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.tokens import estimate_message_tokens
from model_orchestrator.strategies.member import Member
from model_orchestrator.strategies.specialist import (
    Conversation,
    Rule,
    RuleClassifier,
    SpecialistModel,
    default_classifier,
)
from model_orchestrator.testing import FakeClock, ScriptedModel

# --- Rule -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Please write code for me", "keyword 'code'"),
        ("CODE review needed", "keyword 'code'"),
        ("can you debug.", "keyword 'debug'"),
        ("(function) pointers", "keyword 'function'"),
        ("decode this string", None),
        ("my codebase is big", None),
        ("functional programming", None),
    ],
)
def test_keywords_match_whole_words_case_insensitively(text: str, expected: str | None) -> None:
    assert Rule("code", keywords=("code", "function", "debug")).match(text) == expected


def test_keywords_may_be_phrases_or_end_in_punctuation() -> None:
    rule = Rule("code", keywords=("time complexity", "c++"))
    assert rule.match("What is the Time  Complexity?") is None  # phrases match as written
    assert rule.match("what is the time complexity?") == "keyword 'time complexity'"
    assert rule.match("port it to C++ please") == "keyword 'c++'"
    assert rule.match("c++x") is None


def test_pattern_and_max_chars() -> None:
    assert Rule("math", pattern=r"\d\s*\+\s*\d").match("What is 2 + 2?") == "pattern '2 + 2'"
    assert Rule("math", pattern=r"INTEGRAL").match("an integral of x") == "pattern 'integral'"
    short = Rule("fast", max_chars=49)
    assert short.match("x" * 49) == "49 chars <= 49"
    assert short.match("x" * 50) is None


def test_every_condition_must_hold() -> None:
    rule = Rule("quick-code", keywords=("code",), max_chars=20)
    assert rule.match("fix my code") == "11 chars <= 20, keyword 'code'"
    assert rule.match("fix my code, which is long and winding") is None
    assert rule.match("fix my script") is None


def test_rule_configuration_errors_and_normalisation() -> None:
    with pytest.raises(ConfigError, match="sets no condition"):
        Rule("empty")
    with pytest.raises(ConfigError, match="sets no condition"):
        Rule("blank", keywords=("  ",))
    with pytest.raises(ConfigError, match="invalid pattern"):
        Rule("bad", pattern="(unclosed")
    rule = Rule("code", keywords=["code", " debug "])  # type: ignore[arg-type]  # as config hands it over
    assert rule.keywords == ("code", "debug") and hash(rule) == hash(Rule("code", keywords=("code", "debug")))


# --- classifiers ----------------------------------------------------------------------------------


def test_first_matching_rule_wins_else_default() -> None:
    classifier = RuleClassifier([Rule("a", keywords=("x",)), Rule("b", keywords=("x", "y"))], "general")
    assert classifier.classify("x and y") == ("a", "rule 'a': keyword 'x'")
    assert classifier.classify("y only") == ("b", "rule 'b': keyword 'y'")
    assert classifier.classify("nothing") == ("general", "no rule matched; default 'general'")
    assert classifier.labels == {"a", "b", "general"}


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Write a function to calculate Fibonacci numbers", "code"),
        ("Now optimize it for large inputs", "fast"),
        ("Calculate the 50th Fibonacci number using your implementation", "code"),
        ("Solve the equation for x, showing each of the steps along the way", "math"),
        ("If I have 12 apples and give away 5 * 2 of them, how many remain after that?", "math"),
        ("Write 3-4 sentences about the history of the printing press in Europe", "general"),
        ("Explain the main causes of the French revolution to a high-school class", "general"),
    ],
)
def test_default_rules_follow_seed_001(text: str, label: str) -> None:
    assert default_classifier().classify(text)[0] == label


# --- SpecialistModel ------------------------------------------------------------------------------


def routes() -> dict[str, ScriptedModel]:
    return {
        label: ScriptedModel([], name=f"{label}-model", default=f"{label} answer")
        for label in ("code", "math", "general")
    }


def specialist(models: dict[str, ScriptedModel], **options: object) -> SpecialistModel:
    members = {label: Member(m, ModelProfile(m.name)) for label, m in models.items()}
    return SpecialistModel(members, default="general", clock=FakeClock(), **options)  # type: ignore[arg-type]


async def test_routes_the_last_user_message_and_explains_why() -> None:
    models = routes()
    request = ChatRequest(
        messages=(
            Message.user("Write a function that sorts a list"),
            Message.assistant("def sort(...)"),
            Message.user("Now calculate how many comparisons it needs for 1000 items, in the worst case"),
        )
    )
    completion = await specialist(models).complete(request)
    assert completion.text == "math answer" and completion.model == "math-model"
    assert len(models["math"].requests) == 1 and models["code"].requests == []
    explanation = completion.explanation
    assert explanation is not None
    assert explanation.strategy == "specialist" and explanation.chosen == "math-model"
    assert dict(explanation.facts) == {
        "task_type": "math",
        "rule": "rule 'math': keyword 'calculate'",
        "route": "math-model",
    }
    assert explanation.reason == "task type 'math' (rule 'math': keyword 'calculate') -> math-model"
    assert [(s.model, s.outcome) for s in explanation.steps] == [("math-model", "ok")]


async def test_a_label_without_a_route_goes_to_the_default() -> None:
    models = routes()
    completion = await specialist(models).complete(ChatRequest.from_prompt("hi"))  # "fast" has no route
    assert completion.model == "general-model"
    assert completion.explanation is not None
    assert completion.explanation.reason == (
        "task type 'fast' (rule 'fast': 2 chars <= 49; no route for 'fast', using 'general') -> general-model"
    )


async def test_a_pluggable_classifier_decides() -> None:
    class Always:
        def classify(self, text: str) -> tuple[str, str]:
            return "code", f"always code ({len(text)} chars)"

    models = routes()
    completion = await specialist(models, classifier=Always()).complete(
        ChatRequest.from_prompt("tell me a joke")
    )
    assert completion.model == "code-model"
    assert (
        completion.explanation is not None
        and completion.explanation.steps[0].reason == "always code (14 chars)"
    )


async def test_member_errors_propagate_with_the_routing_note() -> None:
    models = routes()
    models["code"].push(ServerError("code model down"))
    with pytest.raises(ServerError) as caught:
        await specialist(models).complete(
            ChatRequest.from_prompt("debug my program, it crashes when I start it up")
        )
    assert caught.value.__notes__ == [
        "specialist: task type 'code' (rule 'code': keyword 'debug') was routed to 'code-model'"
    ]


async def test_stream_passes_through_and_explains_on_the_last_delta() -> None:
    models = routes()
    deltas = [d async for d in specialist(models).stream(ChatRequest.from_prompt("implement a queue"))]
    assert "".join(d.text for d in deltas) == "code answer" and len(deltas) > 1
    assert all(d.explanation is None for d in deltas[:-1])
    last = deltas[-1].explanation
    assert last is not None and last.chosen == "code-model"
    assert last.steps[0].output_tokens == deltas[-1].usage.output_tokens  # type: ignore[union-attr]


def test_built_like_every_strategy_and_default_must_be_routed() -> None:
    member = Member(ScriptedModel([]), ModelProfile("c"))
    built = SpecialistModel(
        {"general": member}, default="general", name="s", clock=FakeClock(), bus=EventBus()
    )
    assert built.name == "s"
    with pytest.raises(ConfigError, match="default route 'general' is not among the routes"):
        SpecialistModel(
            {"code": Member(ScriptedModel([]), ModelProfile("c"))}, default="general", clock=FakeClock()
        )


# --- Conversation ---------------------------------------------------------------------------------

ANSWER = "b" * 40  # 10 tokens + 4 overhead, like every 40-character message below


def question(n: int) -> str:
    return f"{n}" + "q" * 39


async def test_history_is_carried_across_turns() -> None:
    model = ScriptedModel(["Paris.", "About 2.1 million."])
    chat = Conversation(model, context_window=4000, system="Be brief.")
    await chat.ask("Capital of France?")
    second = await chat.ask("Its population?", request_id="turn-2", temperature=0.1)
    assert second.text == "About 2.1 million."
    sent = model.requests[1]
    assert [(m.role.value, m.text) for m in sent.messages] == [
        ("system", "Be brief."),
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
        ("user", "Its population?"),
    ]
    assert sent.max_tokens == 512 and sent.request_id == "turn-2" and sent.temperature == 0.1
    assert len(chat.history) == 5


async def test_history_is_trimmed_to_the_window_but_kept_whole() -> None:
    model = ScriptedModel([], default=ANSWER)
    chat = Conversation(model, context_window=100, reserved_output=20, mode="start")
    for n in range(1, 5):
        await chat.ask(question(n))
    sent = model.requests[-1].messages
    assert [m.text[0] for m in sent] == ["2", "b", "3", "b", "4"]  # the first turn was dropped
    assert estimate_message_tokens(sent) <= 100 - 20
    assert chat.last_sent == sent
    assert len(chat.history) == 8 and chat.history[0].text == question(1)


async def test_smart_mode_keeps_system_and_recent_turns() -> None:
    model = ScriptedModel([], default=ANSWER)
    chat = Conversation(model, context_window=110, reserved_output=20, system="sys")
    for n in range(1, 6):
        await chat.ask(question(n))
    sent = model.requests[-1].messages
    # smart: the system message, the last three user turns and the last assistant turn, oldest dropped first
    assert [m.text for m in sent] == ["sys", question(3), question(4), ANSWER, question(5)]
    assert estimate_message_tokens(sent) <= 90


async def test_summarizer_replaces_older_turns() -> None:
    model = ScriptedModel([], default=ANSWER)
    summarizer = ScriptedModel(["They asked four questions."], name="summarizer")
    chat = Conversation(model, context_window=100, reserved_output=20, summarizer=summarizer)
    for n in range(1, 5):
        await chat.ask(question(n))
    sent = model.requests[-1].messages
    assert len(summarizer.requests) == 1
    assert [m.text for m in sent] == [
        "Summary of the earlier conversation:\nThey asked four questions.",
        question(4),
    ]
    assert summarizer.requests[0].messages[1].text.startswith(f"user: {question(1)}\nassistant: {ANSWER}")


async def test_a_failed_turn_is_not_remembered() -> None:
    model = ScriptedModel([ServerError("down"), "ok"])
    chat = Conversation(model, context_window=1000)
    with pytest.raises(ServerError):
        await chat.ask("first try")
    assert not chat.history
    await chat.ask("second try")
    assert [m.text for m in chat.history] == ["second try", "ok"]


async def test_a_message_too_long_for_the_window_is_refused_before_any_call() -> None:
    model = ScriptedModel([])
    chat = Conversation(model, context_window=50, reserved_output=20)
    with pytest.raises(ContextWindowExceededError):
        await chat.ask("x" * 400)
    assert model.requests == []
    with pytest.raises(ConfigError):
        Conversation(model, context_window=100, reserved_output=100)


async def test_conversation_through_a_specialist_routes_each_turn_with_history() -> None:
    models = routes()
    chat = Conversation(specialist(models), context_window=8000)
    for turn in ("Write a function to calculate Fibonacci numbers", "What is its time complexity?"):
        await chat.ask(turn)
    assert len(models["code"].requests) == 1 and len(models["general"].requests) == 1  # "fast" -> default
    second = models["general"].requests[0].messages
    assert [m.text for m in second] == [
        "Write a function to calculate Fibonacci numbers",
        "code answer",
        "What is its time complexity?",
    ]
