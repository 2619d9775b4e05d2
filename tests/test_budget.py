"""Budget helpers: what a request may still spend, and which members a call can afford before making it."""

from __future__ import annotations

import pytest

from model_orchestrator.core.errors import BudgetExceededError
from model_orchestrator.core.pricing import FREE, Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, current_scope, request_scope
from model_orchestrator.strategies.budget import (
    affordable,
    budget_scope,
    remaining_budget,
    require_affordable,
    unaffordable_reason,
)
from model_orchestrator.strategies.member import Member
from model_orchestrator.testing import ScriptedModel

# 1,000 prompt tokens and 1,000 reserved output tokens: easy numbers for the estimates.
REQUEST = ChatRequest.from_prompt("x" * 3_984, max_tokens=1_000)


def member(name: str, price: Price | None) -> Member:
    return Member(ScriptedModel([], name=name), ModelProfile(name=name, price=price))


CHEAP = member("cheap", Price(1.0, 1.0))  # estimate: 2,000 tokens at $1/M = $0.002
DEAR = member("dear", Price(10.0, 10.0))  # $0.02
UNPRICED = member("unpriced", None)
LOCAL = member("local", FREE)


def test_request_estimate_is_what_the_numbers_above_assume() -> None:
    assert CHEAP.profile.estimate_cost(REQUEST) == pytest.approx(0.002)


def test_no_cap_means_no_limit() -> None:
    assert remaining_budget(REQUEST) is None
    assert affordable(UNPRICED, REQUEST) and affordable(DEAR, REQUEST)
    require_affordable([UNPRICED], REQUEST)


def test_request_cap_without_scope() -> None:
    assert remaining_budget(REQUEST.with_options(max_cost=0.5)) == 0.5


def test_scope_spend_counts_against_the_request_cap() -> None:
    scope = RequestScope("r")
    scope.record_cost("m", 0.2)
    assert remaining_budget(REQUEST.with_options(max_cost=0.5), scope) == pytest.approx(0.3)
    assert remaining_budget(REQUEST, scope) is None


def test_the_tighter_of_scope_and_request_caps_wins() -> None:
    scope = RequestScope("r", max_cost=0.1)
    scope.record_cost("m", 0.05)
    with request_scope(scope):
        assert remaining_budget(REQUEST) == pytest.approx(0.05)
        assert remaining_budget(REQUEST.with_options(max_cost=0.06)) == pytest.approx(0.01)
        assert remaining_budget(REQUEST.with_options(max_cost=1.0)) == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("candidate", "cap", "expected"),
    [
        (CHEAP, 0.002, True),  # exactly the estimate still fits
        (CHEAP, 0.0019, False),
        (DEAR, 0.01, False),
        (DEAR, 0.03, True),
        (UNPRICED, 100.0, False),  # unknown price cannot be kept under a cap
        (LOCAL, 0.0, True),  # free always fits
    ],
)
def test_affordable(candidate: Member, cap: float, expected: bool) -> None:
    assert affordable(candidate, REQUEST.with_options(max_cost=cap)) is expected


def test_overspent_budget_affords_only_free_members() -> None:
    scope = RequestScope("r", max_cost=0.001)
    scope.record_cost("m", 0.002)
    with request_scope(scope):
        assert not affordable(CHEAP, REQUEST)
        assert affordable(LOCAL, REQUEST)


def test_an_explicit_remaining_amount_is_used_as_given() -> None:
    assert affordable(CHEAP, REQUEST, remaining=0.01)
    assert not affordable(CHEAP, REQUEST, remaining=0.001)


def test_unaffordable_reason_names_both_amounts() -> None:
    assert unaffordable_reason(DEAR, REQUEST, 0.01) == (
        "estimated cost $0.02 exceeds the remaining budget $0.01"
    )
    assert "price unknown" in unaffordable_reason(UNPRICED, REQUEST, 0.01)


def test_require_affordable_passes_when_one_member_fits() -> None:
    require_affordable([DEAR, CHEAP], REQUEST.with_options(max_cost=0.005))


def test_require_affordable_names_the_cheapest_estimate_and_what_is_left() -> None:
    with pytest.raises(BudgetExceededError) as caught:
        require_affordable([DEAR, UNPRICED, CHEAP], REQUEST.with_options(max_cost=0.001))
    message = str(caught.value)
    assert "$0.001:" in message and "cheapest estimate is $0.002 (cheap)" in message
    assert "nothing was sent" in message and caught.value.status_code == 402


def test_require_affordable_with_only_unknown_prices() -> None:
    with pytest.raises(BudgetExceededError, match="no member has a known price"):
        require_affordable([UNPRICED], REQUEST.with_options(max_cost=1.0))


def test_budget_scope_opens_a_scope_only_when_none_is_open() -> None:
    request = REQUEST.with_options(max_cost=0.5, request_id="req-9")
    with budget_scope(request) as opened:
        assert current_scope() is opened
        assert (opened.request_id, opened.max_cost) == ("req-9", 0.5)
    assert current_scope() is None
    outer = RequestScope("outer")
    with request_scope(outer), budget_scope(request) as reused:
        assert reused is outer
