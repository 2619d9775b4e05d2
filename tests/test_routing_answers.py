"""Cascade scorers that read the cheap answer: format, hedging, arithmetic, and their combination."""

from __future__ import annotations

import pytest

from model_orchestrator.routing.answers import (
    AnswerScorer,
    answer_check_points,
    arithmetic_errors,
    final_number,
    format_problems,
    hedging,
    unused_givens,
)

WORD_PROBLEM = "Tom has 3 bags with 4 apples each. How many apples does he have?"
CHOICE = "Which is a noble gas?\nA. Oxygen\nB. Neon\nC. Iron\nD. Carbon\nAnswer:"


def test_format_checks_follow_what_the_prompt_asks_for() -> None:
    assert format_problems(WORD_PROBLEM, "3 x 4 = 12\n#### 12") == 0.0
    assert format_problems(WORD_PROBLEM, "He has quite a lot of apples.") == 1.0
    assert format_problems(CHOICE, "B. Neon") == 0.0
    assert format_problems(CHOICE, "Neon is a noble gas because") == 1.0
    assert format_problems("Reply in JSON with a name", '{"name": "x"}') == 0.0
    assert format_problems("Reply in JSON with a name", "name: x") == 1.0
    assert format_problems("Write a poem", "   ") == 1.0
    assert format_problems("Write a poem", "Roses are red") == 0.0


def test_arithmetic_is_checked_in_calculator_notes_and_plain_steps() -> None:
    assert arithmetic_errors("3 bags: <<3*4=12>>12 apples, <<12+5=18>>18 in all") == 1
    assert arithmetic_errors("3 x 4 = 12 and 12 + 5 = 17") == 0
    assert arithmetic_errors("3 x 4 = 13") == 1
    assert arithmetic_errors("<<2**1000**1000=1>>") == 0  # refused, not evaluated
    assert final_number("so the answer is 1,234.") == 1234.0
    assert final_number("#### -7") == -7.0
    assert final_number("no number here") is None


def test_hedges_and_second_thoughts_are_counted() -> None:
    assert hedging("I think it might be 4, but I'm not sure. Wait, let me recalculate.") >= 4
    assert hedging("It is 4.") == 0


def test_the_combined_check_rises_with_each_problem() -> None:
    scorer = AnswerScorer("answer-check")
    clean = scorer.strong_score(WORD_PROBLEM, "<<3*4=12>>12 apples\n#### 12")
    wrong_sum = scorer.strong_score(WORD_PROBLEM, "<<3*4=13>>13 apples\n#### 13")
    no_answer = scorer.strong_score(WORD_PROBLEM, "Hmm, I think maybe a dozen, not sure.")
    assert 0.0 <= clean < wrong_sum < no_answer <= 1.0
    points = answer_check_points(WORD_PROBLEM, "<<3*4=12>>12 apples\n#### 12.5")
    assert points["mismatch"] == 1.0 and points["odd_count"] == 1.0


def test_an_answer_that_ignores_given_numbers_counts_against_it() -> None:
    prompt = "Tom has 3 bags with 4 apples each and gives away 1,200 grams. How many apples does he have?"
    assert unused_givens(prompt, "3 x 4 = 12 apples; the 1200 grams do not matter.\n#### 12") == 0.0
    assert unused_givens(prompt, "He has 12 apples.\n#### 12") == 1.0
    assert unused_givens(prompt, "3 bags make 3 apples.\n#### 3") == pytest.approx(2 / 3)
    choice = "How many protons are in 2 neon atoms?\nA. 8\nB. 10\nC. 20\nD. 18"
    assert unused_givens(choice, "C") == 0.0  # multiple choice: the answer is a letter
    assert unused_givens("How many legs does a spider have?", "#### 8") == 0.0  # nothing given
    assert answer_check_points(prompt, "He has 12 apples.\n#### 12")["unused_givens"] == 1.0


def test_unknown_scorers_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown answer scorer"):
        AnswerScorer("vibes")
