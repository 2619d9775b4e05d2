"""Outcome labels: how good an answer was, from the user (``feedback``) or a strategy's own check.

Owns the score scale, recording a user's feedback against a request the ledger knows, reading the
labelled requests back for ``orchestrator train-router --from-ledger``, and forgetting stored prompts
nobody labelled. Labels from strategies (a cascade's confidence, a validation verdict) arrive as
``AnswerJudged`` events through the recorder (``records``); this module does not train anything.

The scale: ``score`` is a number from 0 (the answer was wrong or useless) to 1 (it was right); thumbs
up/down are 1/0, a 1-5 rating ``r`` is ``(r - 1) / 4``. Feedback is append-only: a later label on the same
request and model supersedes an earlier one when the labels are read, and both stay in the table.

Privacy: a label holds a score, the model judged, its tier and the labelling key's id, never text.
Prompt text exists only with ``ledger.store_prompts`` (``request_prompts``, written at request time
because feedback usually comes later); ``prune_prompts`` deletes the ones still unlabelled after the
retention period.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.ledger.records import LabelRow
from model_orchestrator.ledger.tables import outcome_labels, request_prompts, requests

if TYPE_CHECKING:
    from model_orchestrator.ledger.store import LedgerStore

FEEDBACK = "feedback"
SCALE = "a number from 0 (the answer was wrong or useless) to 1 (it was right)"
MAX_REQUEST_ID = 64


class UnknownRequestError(ConfigError):
    """The ledger has no request with this id (or not one the caller's key made)."""

    default_status = 404


class InvalidFeedbackError(ConfigError):
    """The feedback cannot be recorded as given: a score off the scale, or a request without an answer.

    ``param`` names the input at fault (``score`` or ``request_id``)."""

    default_status = 422

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class FeedbackReceipt:
    """A recorded feedback label."""

    label_id: str
    request_id: str
    score: float
    model: str | None
    created_at: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "id": self.label_id,
            "request_id": self.request_id,
            "score": self.score,
            "model": self.model,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class OutcomeLabel:
    """One label of a request: who judged (``source``), which model's answer, its tier, the score."""

    source: str
    model: str | None
    tier: int | None
    score: float
    created_at: float


@dataclass(frozen=True, slots=True)
class LabelledRequest:
    """A request with its labels (oldest first) and, when stored, the text its router read."""

    request_id: str
    prompt: str | None
    category: str | None
    labels: tuple[OutcomeLabel, ...]


def checked_score(score: object) -> float:
    """``score`` as a float on the scale, or ``InvalidFeedbackError`` saying what the scale is."""
    if isinstance(score, bool):
        return float(score)
    if not isinstance(score, int | float) or not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise InvalidFeedbackError(
            f"score must be {SCALE}, not {score!r}; map thumbs up/down to 1/0 and a 1-5 rating r to "
            "(r - 1) / 4",
            param="score",
        )
    return float(score)


def checked_request_id(request_id: object) -> str:
    """A request id as the ledger keeps them (1-64 characters), else ``UnknownRequestError``."""
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
        raise UnknownRequestError(
            "request_id must be the id of an answered request (the result's request_id, "
            "or the gateway's x-orchestrator-request-id header)"
        )
    return request_id


async def record_feedback(
    store: LedgerStore,
    *,
    request_id: str,
    score: float,
    caller_key_id: str | None,
    tier_of: Callable[[str], int | None],
    now: float,
) -> FeedbackReceipt:
    """Label the answer to ``request_id`` with ``score``.

    ``caller_key_id`` is the virtual key asking (None: a trusted caller): a key may label only requests
    made with it, and someone else's request is reported as unknown, so ids cannot be probed.
    """
    checked = checked_score(score)
    request_id = checked_request_id(request_id)
    query = sa.select(requests.c.model_used, requests.c.api_key_id, requests.c.ok).where(
        requests.c.request_id == request_id
    )
    async with store.engine.connect() as conn:
        found = (await conn.execute(query)).first()
    if found is None or (caller_key_id is not None and found.api_key_id != caller_key_id):
        raise UnknownRequestError(
            f"no request {request_id!r} in the ledger; use the request_id of an answered request "
            "(the result's request_id, or the gateway's x-orchestrator-request-id header)"
        )
    if not found.ok or found.model_used is None:
        raise InvalidFeedbackError(
            f"request {request_id!r} failed, so it has no answer to label; label answered requests only",
            param="request_id",
        )
    row = LabelRow(
        label_id=uuid.uuid4().hex,
        request_id=request_id,
        created_at=now,
        source=FEEDBACK,
        model=found.model_used,
        tier=tier_of(found.model_used),
        score=checked,
        api_key_id=caller_key_id,
    )
    values = asdict(row)
    await store.run(lambda sync: sync.execute(outcome_labels.insert().values(**values)))
    return FeedbackReceipt(row.label_id, request_id, checked, row.model, now)


async def labelled_requests(store: LedgerStore) -> list[LabelledRequest]:
    """Every request with at least one label, its labels oldest first, and its stored prompt if any."""
    query = (
        sa.select(
            outcome_labels.c.request_id,
            outcome_labels.c.source,
            outcome_labels.c.model,
            outcome_labels.c.tier,
            outcome_labels.c.score,
            outcome_labels.c.created_at,
            request_prompts.c.prompt,
            requests.c.category,
        )
        .select_from(
            outcome_labels.outerjoin(
                request_prompts, request_prompts.c.request_id == outcome_labels.c.request_id
            ).outerjoin(requests, requests.c.request_id == outcome_labels.c.request_id)
        )
        .order_by(outcome_labels.c.request_id, outcome_labels.c.created_at, outcome_labels.c.label_id)
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    grouped: dict[str, LabelledRequest] = {}
    for row in rows:
        label = OutcomeLabel(row.source, row.model, row.tier, float(row.score), float(row.created_at))
        known = grouped.get(row.request_id)
        labels = (*known.labels, label) if known is not None else (label,)
        grouped[row.request_id] = LabelledRequest(row.request_id, row.prompt, row.category, labels)
    return list(grouped.values())


async def prune_prompts(store: LedgerStore, *, before: float) -> int:
    """Delete stored prompts older than ``before`` that no label refers to; returns how many."""
    labelled = sa.select(outcome_labels.c.request_id)
    delete = request_prompts.delete().where(
        request_prompts.c.stored_at < before, request_prompts.c.request_id.not_in(labelled)
    )
    return await store.run(lambda sync: int(sync.execute(delete).rowcount or 0))
