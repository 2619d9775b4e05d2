"""``iter_sse``: the WHATWG event-stream rules, fed line by line."""

from __future__ import annotations

from collections.abc import AsyncIterator

from model_orchestrator.providers.sse import SseEvent, iter_sse


async def _lines(*lines: bytes) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


async def _events(*lines: bytes) -> list[SseEvent]:
    return [event async for event in iter_sse(_lines(*lines))]


async def test_one_event_per_blank_line() -> None:
    events = await _events(b"data: one", b"", b"data: two", b"")
    assert events == [SseEvent(None, "one"), SseEvent(None, "two")]


async def test_multi_line_data_is_joined_with_newlines() -> None:
    assert await _events(b"data: first", b"data: second", b"data:", b"") == [
        SseEvent(None, "first\nsecond\n")
    ]


async def test_comments_and_unknown_fields_are_ignored() -> None:
    events = await _events(b": keep-alive", b"retry: 3000", b"foo: bar", b"data: x", b"")
    assert events == [SseEvent(None, "x")]


async def test_event_type_and_id_are_kept_and_type_resets_after_dispatch() -> None:
    events = await _events(b"event: message_start", b"id: 7", b"data: {}", b"", b"data: next", b"")
    assert events == [SseEvent("message_start", "{}", "7"), SseEvent(None, "next", "7")]


async def test_only_one_leading_space_is_removed_and_no_space_is_fine() -> None:
    assert await _events(b"data:  two spaces", b"data:none", b"") == [SseEvent(None, " two spaces\nnone")]


async def test_field_without_colon_has_empty_value() -> None:
    assert await _events(b"data", b"data", b"") == [SseEvent(None, "\n")]


async def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert await _events(b"", b"", b"event: ping", b"", b"") == []


async def test_unterminated_last_event_is_discarded() -> None:
    assert await _events(b"data: complete", b"", b"data: cut off") == [SseEvent(None, "complete")]


async def test_byte_order_mark_at_start_is_dropped() -> None:
    assert await _events(b"\xef\xbb\xbfdata: x", b"") == [SseEvent(None, "x")]


async def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert await _events(b"data: \xff", b"") == [SseEvent(None, "\ufffd")]


async def test_id_with_nul_is_ignored() -> None:
    assert await _events(b"id: a\x00b", b"data: x", b"") == [SseEvent(None, "x", None)]


async def test_only_the_first_lines_byte_order_mark_is_dropped() -> None:
    # A later one is part of the field name, so the line is an unknown field and ignored.
    assert await _events(b"data: x", b"\xef\xbb\xbfdata: y", b"") == [SseEvent(None, "x")]


async def test_invalid_utf8_in_a_value_without_a_space_and_in_other_fields_is_replaced() -> None:
    events = await _events(b"event: \xffe", b"id: \xfe", b"data:\xff\xfe", b"")
    assert events == [SseEvent("\ufffde", "\ufffd\ufffd", "\ufffd")]
