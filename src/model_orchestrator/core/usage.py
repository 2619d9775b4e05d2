"""Token usage of one call. Owns counting and adding; not prices (see ``pricing``)."""

from __future__ import annotations

from dataclasses import dataclass

from model_orchestrator.core.frozen import quick_init


@quick_init
@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call consumed.

    ``estimated`` is True when the provider reported nothing and the numbers are our guess;
    cached and reasoning tokens are kept apart because they are priced at their own rates.
    ``cached_input_tokens`` (cache reads) and ``cache_write_tokens`` (prompt tokens written to a cache,
    billed at a premium by some vendors) are part of ``input_tokens``; ``reasoning_tokens`` is part of
    ``output_tokens``.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            estimated=self.estimated or other.estimated,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )
