"""Span attribute names: the OpenInference semantic conventions Phoenix reads, and our own.

The OpenInference names are copied from the spec (https://arize-ai.github.io/openinference/spec/) rather
than imported from ``openinference-semantic-conventions``, so tracing needs nothing beyond the OpenTelemetry
SDK; a test checks each against that package. Our own attributes live under ``orchestrator.``.
"""

from __future__ import annotations

# OpenInference: span kinds and the attributes backends render as LLM traces.
SPAN_KIND = "openinference.span.kind"
KIND_CHAIN = "CHAIN"
KIND_LLM = "LLM"
INPUT_VALUE = "input.value"
INPUT_MIME_TYPE = "input.mime_type"
OUTPUT_VALUE = "output.value"
OUTPUT_MIME_TYPE = "output.mime_type"
METADATA = "metadata"
TAGS = "tag.tags"
LLM_MODEL_NAME = "llm.model_name"
LLM_PROVIDER = "llm.provider"
LLM_TOKENS_PROMPT = "llm.token_count.prompt"
LLM_TOKENS_COMPLETION = "llm.token_count.completion"
LLM_TOKENS_TOTAL = "llm.token_count.total"
LLM_TOKENS_CACHE_READ = "llm.token_count.prompt_details.cache_read"
LLM_TOKENS_REASONING = "llm.token_count.completion_details.reasoning"
LLM_COST_TOTAL = "llm.cost.total"
PROJECT_NAME = "openinference.project.name"  # a resource attribute: the Phoenix project

# Ours: what an orchestration adds to a plain LLM call.
REQUEST_ID = "orchestrator.request_id"
REQUESTED = "orchestrator.requested"
STRATEGY = "orchestrator.strategy"
CATEGORY = "orchestrator.category"
API_KEY_ID = "orchestrator.api_key_id"
MAX_COST = "orchestrator.max_cost_usd"
MODEL_USED = "orchestrator.model_used"
COST = "orchestrator.cost_usd"
INPUT_TOKENS = "orchestrator.input_tokens"
OUTPUT_TOKENS = "orchestrator.output_tokens"
ATTEMPTS = "orchestrator.attempts"
LATENCY_MS = "orchestrator.latency_ms"
STATUS = "orchestrator.status"
ERROR_TYPE = "orchestrator.error_type"
ERROR_MESSAGE = "orchestrator.error_message"
ATTEMPT_ID = "orchestrator.attempt_id"
DEPLOYMENT = "orchestrator.deployment"
RETRY_NUMBER = "orchestrator.retry_number"
BREAKER_STATE = "orchestrator.breaker_state"
ESTIMATED_INPUT_TOKENS = "orchestrator.estimated_input_tokens"
USAGE_ESTIMATED = "orchestrator.usage_estimated"
PRICE_KNOWN = "orchestrator.price_known"
STATUS_CODE = "orchestrator.status_code"
RETRYABLE = "orchestrator.retryable"
CANCELLED = "orchestrator.cancelled"
CHOSEN = "orchestrator.chosen"
CONFIDENCE = "orchestrator.confidence"
CONFIDENCE_SOURCE = "orchestrator.confidence_source"
REASON = "orchestrator.reason"
STEPS = "orchestrator.steps"
MODELS_TRIED = "orchestrator.models_tried"
VOTES = "orchestrator.votes"
FACTS = "orchestrator.facts"
ROUTING_PREFIX = "orchestrator.routing."

# Span names: one root per orchestration (seed 001's tree).
ROOT_SPAN = "orchestration"
MODEL_CALL_SPAN = "model_call"
ROUTING_SPAN = "routing_decision"
AGGREGATION_SPAN = "result_aggregation"
