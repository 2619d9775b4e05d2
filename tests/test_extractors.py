"""Answer extractors: each reads its kind of answer out of realistic model prose, and abstains otherwise."""

from __future__ import annotations

import pytest

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.strategies.extractors import (
    by_name,
    choice_letter,
    describe,
    json_field,
    number,
    regex,
    short_text,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is (C)", "C"),
        ("C) Canberra", "C"),
        ("**C**", "C"),
        ("Answer: c", "C"),
        ("answer: b.", "B"),
        ("**Answer:** D", "D"),
        ("The correct option is B.", "B"),
        ("c", "C"),
        ("(A)", "A"),
        ("Answer: A", "A"),
        ("It's (B), since Canberra was purpose-built.", "B"),
        ("A) Sydney\nB) Melbourne\nC) Canberra\nThe correct answer is C.", "C"),
        ("The answer is D. Wait, no: the answer is B.", "B"),
        ("I believe C is right.", "C"),
        ("Option C is correct", "C"),
    ],
)
def test_choice_letter_reads_the_pick(text: str, expected: str) -> None:
    assert choice_letter()(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Canberra",  # the C inside the word is not a pick
        "the answer is a city in Australia",  # the article "a" is not option A
        "A capital city is Canberra.",
        "Option A is wrong, option B is wrong, so C or D.",  # several loose letters: ambiguous
        "A) Sydney\nB) Melbourne\nC) Canberra",  # only the options listed
        "",
    ],
)
def test_choice_letter_abstains_without_a_clear_pick(text: str) -> None:
    assert choice_letter()(text) is None


def test_choice_letter_limits_itself_to_its_letters() -> None:
    assert choice_letter("ABCDE")("The answer is E.") == "E"
    assert choice_letter()("The answer is E.") is None
    with pytest.raises(ConfigError):
        choice_letter("A1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", "42"),
        ("It costs $1,234.50 in total", "1234.5"),
        ("3/4", "0.75"),
        ("Half: 1 / 2 of it", "0.5"),
        ("4.0", "4"),
        ("x = -2.50", "-2.5"),
        ("\u22127 degrees", "-7"),
        ("somewhere between 3-4", "4"),
        ("1,2,3", "3"),
        ("The population is 1,000,000 people", "1000000"),
        ("2 + 2 = 4.", "4"),
        (".5", "0.5"),
        ("1/3", "0.333333333333"),
        ("First 12, then finally 7", "7"),
        ("10%", "10"),
    ],
)
def test_number_reads_the_last_number_normalised(text: str, expected: str) -> None:
    assert number()(text) == expected


@pytest.mark.parametrize("text", ["no digits here", "", "0/0"])
def test_number_abstains_without_a_number(text: str) -> None:
    assert number()(text) is None


def test_short_text_normalises_case_punctuation_articles_and_space() -> None:
    extract = short_text()

    assert extract("The  Canberra!") == "canberra"
    assert extract("  canberra. ") == "canberra"
    assert extract("An apple, a day") == "apple day"
    assert extract("...") is None


def test_json_field_reads_plain_fenced_and_embedded_json() -> None:
    extract = json_field("answer.value")

    assert extract('{"answer": {"value": "Paris "}}') == "Paris"
    assert extract('```json\n{"answer": {"value": 4.0}}\n```') == "4"
    assert extract('Sure! {"answer": {"value": true}} Hope that helps.') == "true"
    assert extract('{"answer": {"other": 1}}') is None
    assert extract("no json at all") is None
    assert json_field("items.1.name")('{"items": [{"name": "a"}, {"name": "b"}]}') == "b"
    assert json_field("items")('{"items": {"b": 1, "a": [2]}}') == '{"a":[2],"b":1}'
    with pytest.raises(ConfigError):
        json_field("a..b")


def test_regex_takes_the_last_match_and_its_group() -> None:
    assert regex(r"Final: (\w+)")("Final: draft ... Final: done") == "done"
    assert regex(r"\d+")("a 12 b 34") == "34"  # no group: the whole match
    assert regex(r"(?P<city>[A-Z]\w+) is the capital", "city")("Canberra is the capital") == "Canberra"
    assert regex(r"x=(\d+)")("nothing") is None
    with pytest.raises(ConfigError):
        regex("(unclosed")
    with pytest.raises(ConfigError):
        regex(r"(\d)", 2)


@pytest.mark.parametrize(
    ("spec", "text", "expected"),
    [
        ("choice", "The answer is (B)", "B"),
        ("choice:ABCDE", "Answer: E", "E"),
        ("number", "about 3,000.0", "3000"),
        ("text", "The Paris.", "paris"),
        ("json:result.city", '{"result": {"city": "Rome"}}', "Rome"),
        ("regex:(?i)final answer:\\s*(\\w+)", "FINAL ANSWER: yes", "yes"),
    ],
)
def test_by_name_builds_each_extractor_and_round_trips_its_spec(spec: str, text: str, expected: str) -> None:
    extractor = by_name(spec)

    assert extractor(text) == expected
    assert describe(extractor) == spec


@pytest.mark.parametrize("spec", ["", "vote", "json:", "regex:", "number:3", "regex:("])
def test_by_name_rejects_unknown_spellings_with_the_choices(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"choice|regex"):
        by_name(spec)


def test_describe_names_a_custom_function() -> None:
    def first_word(text: str) -> str | None:
        return text.split()[0] if text.split() else None

    assert describe(first_word) == "first_word"
