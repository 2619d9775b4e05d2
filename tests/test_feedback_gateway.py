"""``POST /v1/feedback`` through the official ``openai`` SDK: a key labels its own answers (by request id
or completion id), never another key's; unknown ids are 404, scores off 0-1 are 422, bodies are
checked, the route needs a key and is in ``/openapi.json``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from model_orchestrator.testing import FakeUpstream, Reply
from tests.gateway_helpers import MASTER, USER, Live, live_gateway


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    up = FakeUpstream().start()
    try:
        async with live_gateway(up) as running:
            up.script(*[Reply("Paris")] * 4)
            yield running
    finally:
        up.stop()


async def _answer(client: openai.AsyncOpenAI) -> tuple[str, str]:
    """(the x-orchestrator-request-id header, the completion id) of one answered request."""
    raw = await client.chat.completions.with_raw_response.create(model="a", messages=USER)  # type: ignore[arg-type]
    return raw.headers["x-orchestrator-request-id"], raw.parse().id


async def _feedback(client: openai.AsyncOpenAI, body: object) -> dict[str, object]:
    answer = await client.post("/feedback", cast_to=httpx.Response, body=body)
    assert answer.status_code == 200
    data: dict[str, object] = answer.json()
    return data


async def test_a_key_labels_its_own_answers_and_the_label_reaches_the_ledger(live: Live) -> None:
    store = await live.orch.virtual_keys()
    assert store is not None
    _, secret = await store.create(name="team-a")
    client = live.client(secret)
    request_id, completion_id = await _answer(client)

    first = await _feedback(client, {"request_id": request_id, "score": 1})
    second = await _feedback(client, {"request_id": completion_id, "score": 0.25})
    labelled = await live.orch.ledger.labelled_requests()

    assert first["object"] == "feedback" and first["request_id"] == request_id
    assert first["model"] == "a" and first["score"] == 1.0
    assert second["request_id"] == request_id  # the chatcmpl- id names the same request
    (request,) = labelled
    assert [label.score for label in request.labels] == [1.0, 0.25]


async def test_another_keys_request_is_unknown_but_the_master_key_may_label_it(live: Live) -> None:
    store = await live.orch.virtual_keys()
    assert store is not None
    _, owner = await store.create(name="owner")
    _, other = await store.create(name="other")
    request_id, _ = await _answer(live.client(owner))

    with pytest.raises(openai.NotFoundError) as refused:
        await live.client(other).post(
            "/feedback", cast_to=httpx.Response, body={"request_id": request_id, "score": 1}
        )
    labelled_by_master = await _feedback(live.client(), {"request_id": request_id, "score": 0})

    error = refused.value.body
    assert isinstance(error, dict) and error["code"] == "request_not_found" and error["param"] == "request_id"
    assert "no request" in str(error["message"])
    assert labelled_by_master["score"] == 0.0


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"request_id": "no-such-request", "score": 1}, 404, "request_id"),
        ({"request_id": "REPLACED", "score": 1.5}, 422, "score"),
        ({"request_id": "REPLACED", "score": -1}, 422, "score"),
        ({"request_id": "REPLACED"}, 400, "score"),
        ({"request_id": "REPLACED", "score": "good"}, 400, "score"),
        ({"request_id": "REPLACED", "score": 1, "comment": "free text is not kept"}, 400, "comment"),
    ],
)
async def test_bad_feedback_gets_a_clear_status(
    live: Live, body: dict[str, object], status: int, param: str
) -> None:
    client = live.client()
    request_id, _ = await _answer(client)
    sent = {k: (request_id if v == "REPLACED" else v) for k, v in body.items()}
    with pytest.raises(openai.APIStatusError) as refused:
        await client.post("/feedback", cast_to=httpx.Response, body=sent)
    error = refused.value.body
    assert refused.value.status_code == status
    assert isinstance(error, dict) and error["param"] == param and error["message"]
    assert await live.orch.ledger.labelled_requests() == []


async def test_the_route_needs_a_key_and_is_documented(live: Live) -> None:
    request_id, _ = await _answer(live.client())
    stranger = live.client("sk-orch-000000000000-nope")
    with pytest.raises(openai.AuthenticationError):
        await stranger.post("/feedback", cast_to=httpx.Response, body={"request_id": request_id, "score": 1})
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {MASTER}"}) as http:
        document = (await http.get(f"{live.url}/openapi.json")).json()
    operation = document["paths"]["/v1/feedback"]["post"]
    schema = document["components"]["schemas"]["FeedbackBody"]
    assert {"200", "404", "422"} <= set(operation["responses"])
    assert schema["properties"]["score"]["minimum"] == 0 and schema["properties"]["score"]["maximum"] == 1
    assert set(schema["required"]) == {"request_id", "score"}
