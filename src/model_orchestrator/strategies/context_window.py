"""Fitting a conversation into a model's context window (seed 002's context window manager).

Owns choosing which messages to keep when the prompt plus the reserved output would overflow a window:
truncation from the start, the end or the middle, a "smart" cut (system, the last three user turns and
the last assistant turn), or summarising older turns with a cheap model. System messages and the last
user message are always kept whole by ``fit_messages``; ``fit_conversation`` may also cut the text of
that last message (a long single prompt) when nothing else is left to drop. When even that cannot fit,
``ContextWindowExceededError`` says so. Token counts are estimates (``core.tokens``) unless a counter is
passed. It does not pick models or decide when to fit (``context_fit.ContextFitModel`` does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from model_orchestrator.core.errors import ContextWindowExceededError
from model_orchestrator.core.messages import Message, Role
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.tokens import estimate_message_tokens

TruncationMode = Literal["smart", "start", "end", "middle"]
TokenCounter = Callable[[Message], int]

SUMMARY_INSTRUCTION = (
    "Summarise the conversation below in a few sentences. Keep names, numbers, decisions and open "
    "questions; leave out pleasantries. Reply with the summary only."
)
SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
# Marks where text was cut out of a message, so the model knows something is missing.
CUT_MARKER = "\n[...]\n"


@dataclass(frozen=True, slots=True)
class ContextFit:
    """A conversation fitted into a window, and what fitting it removed."""

    messages: tuple[Message, ...]
    dropped_messages: int = 0
    cut_characters: int = 0
    summarized_messages: int = 0

    @property
    def changed(self) -> bool:
        """True when anything was dropped, cut or summarised."""
        return bool(self.dropped_messages or self.cut_characters or self.summarized_messages)


def message_tokens(message: Message) -> int:
    """The default counter: the estimated tokens of one message, overhead included."""
    return estimate_message_tokens((message,))


def fit_messages(
    messages: Iterable[Message],
    *,
    context_window: int,
    reserved_output: int,
    mode: TruncationMode = "smart",
    count: TokenCounter = message_tokens,
) -> tuple[Message, ...]:
    """The messages that fit ``context_window - reserved_output`` tokens, in their original order.

    ``start`` drops the oldest turns; ``end`` drops the newest turns before the last user message;
    ``middle`` keeps the first and the last turns and drops the middle; ``smart`` keeps the last three
    user turns and the last assistant turn, then drops the oldest of those. Unchanged when all fit.
    Whole messages only: raises ``ContextWindowExceededError`` when the pinned ones cannot fit.
    """
    fitted = fit_conversation(
        messages, context_window=context_window, reserved_output=reserved_output, mode=mode, count=count
    )
    return fitted.messages


def fit_conversation(
    messages: Iterable[Message],
    *,
    context_window: int,
    reserved_output: int,
    mode: TruncationMode = "smart",
    count: TokenCounter = message_tokens,
    cut_text: bool = False,
) -> ContextFit:
    """Like ``fit_messages``, reporting what was dropped; with ``cut_text``, a last message too long for
    the window is cut as well: ``start`` keeps its end, ``end`` its beginning, ``middle`` and ``smart``
    both ends (``CUT_MARKER`` where text was taken out). System messages are never cut.
    """
    if mode not in _SELECTORS:
        raise ValueError(f"unknown truncation mode {mode!r}; expected one of {', '.join(_SELECTORS)}")
    messages = tuple(messages)
    budget = context_window - reserved_output
    if sum(count(m) for m in messages) <= budget:
        return ContextFit(messages)
    pinned, candidates = _pinned_and_candidates(messages)
    room = budget - sum(count(messages[i]) for i in pinned)
    if room < 0:
        if not cut_text:
            raise _overflow(messages, pinned, budget, context_window, reserved_output, count)
        return _cut_pinned(messages, pinned, context_window, reserved_output, mode, count)
    if mode == "smart":
        candidates = _smart_candidates(messages, candidates)
    sizes = {i: count(messages[i]) for i in candidates}
    kept = _whole_tool_turns(messages, {*pinned, *_SELECTORS[mode](candidates, sizes, room)})
    fitted = tuple(messages[i] for i in sorted(kept))
    return ContextFit(fitted, dropped_messages=len(messages) - len(fitted))


def fit_request(
    request: ChatRequest, profile: ModelProfile, *, mode: TruncationMode = "smart"
) -> ChatRequest:
    """``request`` cut to ``profile``'s window minus its reserved output (unchanged if it fits)."""
    if profile.context_window is None or profile.fits(request):
        return request
    messages = fit_messages(
        request.messages,
        context_window=profile.context_window,
        reserved_output=profile.reserved_output(request),
        mode=mode,
    )
    return request.with_options(messages=messages)


async def summarize_messages(
    messages: Iterable[Message],
    summarizer: ChatModel,
    *,
    context_window: int,
    reserved_output: int,
    summary_tokens: int = 256,
    count: TokenCounter = message_tokens,
    instruction: str = SUMMARY_INSTRUCTION,
    request_id: str | None = None,
) -> tuple[Message, ...]:
    """Like ``fit_messages``, but older turns are replaced by a summary written by ``summarizer``.

    The most recent turns that fit (next to ``summary_tokens`` reserved for the summary) are kept
    verbatim; everything older becomes one system message after the original system messages. The
    summarizer's own cost is charged like any call (wrap it in ``ObservedModel``).
    """
    fitted = await summarize_conversation(
        messages,
        summarizer,
        context_window=context_window,
        reserved_output=reserved_output,
        summary_tokens=summary_tokens,
        count=count,
        instruction=instruction,
        request_id=request_id,
    )
    return fitted.messages


async def summarize_conversation(
    messages: Iterable[Message],
    summarizer: ChatModel,
    *,
    context_window: int,
    reserved_output: int,
    summary_tokens: int = 256,
    count: TokenCounter = message_tokens,
    instruction: str = SUMMARY_INSTRUCTION,
    request_id: str | None = None,
) -> ContextFit:
    """``summarize_messages``, reporting how many turns were summarised (or dropped when the summary
    could not fit after all)."""
    messages = tuple(messages)
    budget = context_window - reserved_output
    if sum(count(m) for m in messages) <= budget:
        return ContextFit(messages)
    pinned, candidates = _pinned_and_candidates(messages)
    room = budget - sum(count(messages[i]) for i in pinned)
    if room < 0:  # checked first so that no summary is paid for when nothing could fit anyway
        raise _overflow(messages, pinned, budget, context_window, reserved_output, count)
    sizes = {i: count(messages[i]) for i in candidates}
    allowance = summary_tokens + count(Message.system(SUMMARY_PREFIX))
    recent = _drop_oldest(candidates, sizes, room - allowance) if room > allowance else []
    older = [i for i in candidates if i not in recent]

    def plain_cut(conversation: tuple[Message, ...]) -> ContextFit:
        return fit_conversation(
            conversation,
            context_window=context_window,
            reserved_output=reserved_output,
            mode="start",
            count=count,
        )

    if not older:
        return plain_cut(messages)
    transcript = "\n".join(f"{messages[i].role.value}: {messages[i].text}" for i in older)
    summary = await summarizer.complete(
        ChatRequest(
            messages=(Message.system(instruction), Message.user(transcript)),
            max_tokens=summary_tokens,
            temperature=0.0,
            request_id=request_id,
        )
    )
    systems = [messages[i] for i in pinned if messages[i].role is Role.SYSTEM]
    rest = [messages[i] for i in sorted(i for i in (*pinned, *recent) if messages[i].role is not Role.SYSTEM)]
    result = (*systems, Message.system(SUMMARY_PREFIX + summary.text.strip()), *rest)
    try:
        # A summary longer than planned must still not overflow: drop the oldest kept turns if it does...
        fitted = plain_cut(result)
    except ContextWindowExceededError:
        # ...and when it cannot fit at all, the plain cut without it is the best left.
        return plain_cut(messages)
    return ContextFit(
        fitted.messages,
        dropped_messages=fitted.dropped_messages,
        summarized_messages=len(older),
    )


def _cut_pinned(
    messages: Sequence[Message],
    pinned: list[int],
    context_window: int,
    reserved_output: int,
    mode: TruncationMode,
    count: TokenCounter,
) -> ContextFit:
    """Only the pinned messages, the non-system one cut to the room the system messages leave."""
    budget = context_window - reserved_output
    systems = [i for i in pinned if messages[i].role is Role.SYSTEM]
    target = next((i for i in pinned if messages[i].role is not Role.SYSTEM), None)
    room = budget - sum(count(messages[i]) for i in systems)
    if target is None or count(Message.of(messages[target].role, "")) > room:
        raise _overflow(messages, pinned, budget, context_window, reserved_output, count)
    original = messages[target]
    kept = _chars_that_fit(original, room, mode, count)
    cut = Message.of(original.role, _kept_text(original.text, kept, mode))
    return ContextFit(
        tuple(cut if i == target else messages[i] for i in sorted(pinned)),
        dropped_messages=len(messages) - len(pinned),
        cut_characters=len(original.text) - kept,
    )


def _chars_that_fit(message: Message, room: int, mode: TruncationMode, count: TokenCounter) -> int:
    """How many of ``message``'s characters fit ``room`` tokens (a binary search over the counter)."""
    low, high = 0, len(message.text)  # ``low`` characters always fit (checked by the caller)
    while low < high:
        middle = (low + high + 1) // 2
        if count(Message.of(message.role, _kept_text(message.text, middle, mode))) <= room:
            low = middle
        else:
            high = middle - 1
    return low


def _kept_text(text: str, keep: int, mode: TruncationMode) -> str:
    """``keep`` characters of ``text``: its end (start mode), its beginning (end), or both ends."""
    if keep >= len(text):
        return text
    if keep <= 0:
        return ""
    if mode == "start":
        return text[len(text) - keep :]
    if mode == "end":
        return text[:keep]
    head = (keep + 1) // 2
    return text[:head] + CUT_MARKER + text[len(text) - (keep - head) :]


def _pinned_and_candidates(messages: Sequence[Message]) -> tuple[list[int], list[int]]:
    """(indices always kept: system messages and the last user message; the other indices)."""
    pinned = [i for i, m in enumerate(messages) if m.role is Role.SYSTEM]
    users = [i for i, m in enumerate(messages) if m.role is Role.USER]
    others = [i for i in range(len(messages)) if i not in pinned]
    if users:
        pinned.append(users[-1])
    elif others:
        pinned.append(others[-1])
    return pinned, [i for i in others if i not in pinned]


def _smart_candidates(messages: Sequence[Message], candidates: list[int]) -> list[int]:
    """The last three user turns and the last assistant turn with the tool results answering it (the
    last user turn is pinned already)."""
    users = [i for i, m in enumerate(messages) if m.role is Role.USER][-3:]
    assistants = [i for i in candidates if messages[i].role is Role.ASSISTANT][-1:]
    call_ids = {c.id for i in assistants for c in messages[i].tool_calls}
    results = [i for i in candidates if messages[i].tool_call_id in call_ids]
    chosen = {*users, *assistants, *results}
    return [i for i in candidates if i in chosen]


def _whole_tool_turns(messages: Sequence[Message], kept: set[int]) -> set[int]:
    """``kept`` without half tool exchanges: an assistant turn's tool calls and the tool results that
    answer them stay or go together, since providers refuse a result without its call (and the reverse).
    """
    caller = {c.id: i for i, m in enumerate(messages) for c in m.tool_calls}
    results: dict[int, list[int]] = {}
    for i, m in enumerate(messages):
        if m.tool_call_id is not None and m.tool_call_id in caller:
            results.setdefault(caller[m.tool_call_id], []).append(i)
    kept = set(kept)
    changed = True
    while changed:
        orphans = {i for i in kept if _answers_a_dropped_call(messages[i], caller, kept)}
        partial = {i for i, answers in results.items() if i in kept and not set(answers) <= kept}
        changed = bool(orphans or partial)
        kept -= orphans | partial
    return kept


def _answers_a_dropped_call(message: Message, caller: dict[str, int], kept: set[int]) -> bool:
    call_id = message.tool_call_id
    return call_id is not None and caller.get(call_id, -1) not in kept


def _drop_oldest(candidates: list[int], sizes: dict[int, int], room: int) -> list[int]:
    """The newest run of candidates that fits ``room``."""
    return _take_run(list(reversed(candidates)), sizes, room)


def _drop_newest(candidates: list[int], sizes: dict[int, int], room: int) -> list[int]:
    """The oldest run of candidates that fits ``room``."""
    return _take_run(candidates, sizes, room)


def _take_run(order: list[int], sizes: dict[int, int], room: int) -> list[int]:
    kept: list[int] = []
    for index in order:
        if sizes[index] > room:
            break
        kept.append(index)
        room -= sizes[index]
    return kept


def _keep_ends(candidates: list[int], sizes: dict[int, int], room: int) -> list[int]:
    """Alternately the oldest and the newest candidates while each side still fits: drops the middle."""
    front, back = 0, len(candidates) - 1
    open_sides = {"front", "back"}
    kept: list[int] = []
    while front <= back and open_sides:
        for side in ("front", "back"):
            if side not in open_sides or front > back:
                continue
            index = candidates[front] if side == "front" else candidates[back]
            if sizes[index] > room:
                open_sides.discard(side)
                continue
            kept.append(index)
            room -= sizes[index]
            front, back = (front + 1, back) if side == "front" else (front, back - 1)
    return kept


_SELECTORS: dict[str, Callable[[list[int], dict[int, int], int], list[int]]] = {
    "start": _drop_oldest,
    "smart": _drop_oldest,
    "end": _drop_newest,
    "middle": _keep_ends,
}


def _overflow(
    messages: Sequence[Message],
    pinned: list[int],
    budget: int,
    context_window: int,
    reserved_output: int,
    count: TokenCounter,
) -> ContextWindowExceededError:
    needed = sum(count(messages[i]) for i in pinned)
    return ContextWindowExceededError(
        f"the system messages and the last user message need about {needed} tokens, but the window of "
        f"{context_window} tokens minus {reserved_output} reserved for the answer leaves {budget}; "
        "use a model with a larger context window, lower max_tokens or shorten the message"
    )
