"""Well-known models, as data rows: provider, model id, context window, output cap, capabilities, tier.

Prices are not here: config/pricing.py looks them up in ``genai-prices`` (``prices_provider`` names the
provider there). Tiers follow seed 003: 0 fast/cheap, 1 capable/cheap, 2 balanced, 3 strongest.
Context windows and output caps are the vendors' published figures (their model pages).

Capabilities say what a request may need of a model: ``vision`` (image parts), ``tools`` (function
calling), ``json`` (JSON mode) and ``json_schema`` (an answer held to a caller's JSON schema), besides
``text``, ``code``, ``long_context``, ``reasoning`` and ``logprobs``. They come from the vendors' model
pages: OpenAI's structured outputs (every row here), Anthropic's vision and tool use (JSON schemas go
through a forced tool where the API has no native format), Gemini's ``responseSchema``, Mistral's custom
structured outputs (all its API models; Small 3.x reads images), Groq's structured outputs (not its Llama
3 models), DeepSeek's JSON output (no schema, no images; the reasoner calls no tools); the embedded
model holds to JSON and JSON schemas through llama.cpp grammars and offers no tools. A model nobody
listed gets ``UNKNOWN_MODEL_CAPABILITIES`` for its wire format; ``capabilities:`` in config overrides
both (docs/configuration.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One known model."""

    name: str
    provider: str
    model_id: str
    context_window: int
    max_output_tokens: int
    tier: int
    capabilities: frozenset[str]
    prices_provider: str


def _row(
    name: str,
    provider: str,
    ctx: int,
    out: int,
    tier: int,
    caps: str,
    prices: str | None = None,
    model_id: str | None = None,
) -> CatalogueEntry:
    return CatalogueEntry(
        name=name,
        provider=provider,
        model_id=model_id or name,
        context_window=ctx,
        max_output_tokens=out,
        tier=tier,
        capabilities=frozenset(caps.split()),
        prices_provider=prices or provider,
    )


_ALL = "text vision tools json json_schema code"
CATALOGUE: tuple[CatalogueEntry, ...] = (
    _row("gpt-4o-mini", "openai", 128_000, 16_384, 1, _ALL + " logprobs"),
    _row("gpt-4o", "openai", 128_000, 16_384, 2, _ALL + " logprobs"),
    _row("gpt-4.1-nano", "openai", 1_047_576, 32_768, 0, _ALL + " long_context logprobs"),
    _row("gpt-4.1-mini", "openai", 1_047_576, 32_768, 1, _ALL + " long_context logprobs"),
    _row("gpt-4.1", "openai", 1_047_576, 32_768, 2, _ALL + " long_context logprobs"),
    _row("gpt-5-nano", "openai", 400_000, 128_000, 0, _ALL + " reasoning long_context"),
    _row("gpt-5-mini", "openai", 400_000, 128_000, 1, _ALL + " reasoning long_context"),
    _row("gpt-5", "openai", 400_000, 128_000, 3, _ALL + " reasoning long_context"),
    _row("o4-mini", "openai", 200_000, 100_000, 2, _ALL + " reasoning"),
    _row("o3", "openai", 200_000, 100_000, 3, _ALL + " reasoning"),
    _row("claude-haiku-4-5", "anthropic", 200_000, 64_000, 1, _ALL),
    _row("claude-sonnet-4-5", "anthropic", 200_000, 64_000, 2, _ALL + " reasoning"),
    _row("claude-opus-4-5", "anthropic", 200_000, 64_000, 3, _ALL + " reasoning"),
    _row("claude-opus-4-1", "anthropic", 200_000, 32_000, 3, _ALL + " reasoning"),
    _row("gemini-2.5-flash-lite", "gemini", 1_048_576, 65_536, 0, _ALL + " long_context", "google"),
    _row("gemini-2.5-flash", "gemini", 1_048_576, 65_536, 0, _ALL + " long_context reasoning", "google"),
    _row("gemini-2.5-pro", "gemini", 1_048_576, 65_536, 3, _ALL + " long_context reasoning", "google"),
    _row(
        "groq/llama-3.3-70b-versatile",
        "groq",
        131_072,
        32_768,
        1,
        "text tools json code",
        model_id="llama-3.3-70b-versatile",
    ),
    _row(
        "groq/llama-3.1-8b-instant",
        "groq",
        131_072,
        131_072,
        0,
        "text tools json",
        model_id="llama-3.1-8b-instant",
    ),
    _row("deepseek-chat", "deepseek", 64_000, 8_192, 1, "text tools json code"),
    _row("deepseek-reasoner", "deepseek", 64_000, 32_768, 2, "text json code reasoning"),
    _row("mistral-small-latest", "mistral", 128_000, 32_768, 0, "text vision tools json json_schema code"),
    _row("mistral-large-latest", "mistral", 128_000, 32_768, 2, "text tools json json_schema code"),
)

# The embedded model: always listed, needs no key, runs on the CPU (the 'local' extra).
EMBEDDED_MODEL = _row(
    "local/smollm2-135m",
    "local",
    2_048,
    2_048,
    0,
    "text json json_schema logprobs",  # JSON (and JSON schemas) through llama.cpp grammars
    prices="local",
    model_id="smollm2-135m-instruct-q4_1",
)

UNKNOWN_MODEL_CAPABILITIES: dict[str, frozenset[str]] = {
    # Any OpenAI-compatible server takes the `tools` field (one without them answers 400, an error, not a
    # silent drop); images and JSON schemas vary by model, so they must be declared with `capabilities:`.
    "openai": frozenset({"text", "tools", "json"}),
    # Every model these two APIs serve reads images and calls tools; the adapters carry JSON schemas.
    "anthropic": frozenset({"text", "vision", "tools", "json", "json_schema"}),
    "gemini": frozenset({"text", "vision", "tools", "json", "json_schema"}),
    "local": frozenset({"text", "json", "json_schema"}),  # llama.cpp grammars; no tools, no images
    "cli": frozenset({"text"}),
}
"""What a model in no catalogue row and without ``capabilities:`` in config is assumed to have, by wire."""

_BY_NAME = {e.name: e for e in (EMBEDDED_MODEL, *CATALOGUE)}
_BY_ID = {(e.provider, e.model_id): e for e in (EMBEDDED_MODEL, *CATALOGUE)}


def known_capabilities(name: str, provider: str, model_id: str, wire: str | None) -> frozenset[str]:
    """The capabilities of the model ``name`` (``provider``'s ``model_id``, spoken over ``wire``).

    Its catalogue row by name, else the row of the same provider and model id (a configured ``fast`` that
    is ``gpt-4o-mini``), else the assumption for its wire format (text only when even that is unknown).
    """
    entry = _BY_NAME.get(name) or _BY_ID.get((provider, model_id))
    if entry is not None:
        return entry.capabilities
    return UNKNOWN_MODEL_CAPABILITIES.get(wire or "", frozenset({"text"}))
