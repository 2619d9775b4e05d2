"""Labelled routing data: prompts with how well a weak and a strong model did on each (JSON lines).

Owns reading the format of ``orchestrator train-router`` / ``eval-router`` files (the RouteLLM-derived
dev data, or anyone's own labelled traffic). Per line: ``prompt`` (required); the outcome as
``weak_score``/``strong_score`` (any scale), else ``weak_correct``/``strong_correct`` (booleans), else
``label`` (1: the strong model was needed); optionally the task family as ``benchmark``/``family``/
``domain`` and the weak model's answer as ``weak_response``. It does not train or evaluate.

The package ships the data its router was trained on (``shipped_examples``): the RouteLLM-derived dev
split's prompts and scores, without the answers (1.1 MB gzipped), so that ``train-router
--with-shipped-data`` can use it as a prior beside the user's own labels.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from model_orchestrator.core.errors import ConfigError

DEFAULT_FAMILY = "default"
SHIPPED_DATA = "shipped_data.jsonl.gz"
_FAMILY_FIELDS = ("benchmark", "family", "domain")


@dataclass(frozen=True, slots=True)
class RoutingExample:
    """One labelled prompt. Scores are None when the file only says whether the strong model was needed."""

    prompt: str
    weak_score: float | None
    strong_score: float | None
    family: str = DEFAULT_FAMILY
    weak_response: str | None = None
    label: float | None = None

    @property
    def scored(self) -> bool:
        """Whether both models' scores are known (needed to measure routing quality)."""
        return self.weak_score is not None and self.strong_score is not None

    def gain(self, scale: float = 1.0) -> float:
        """What calling the strong model instead gains, on ``scale`` (or the label when unscored)."""
        if self.weak_score is not None and self.strong_score is not None:
            return (self.strong_score - self.weak_score) / scale
        return self.label if self.label is not None else 0.0


def example_from(data: Mapping[str, object], where: str) -> RoutingExample:
    """One example from a decoded JSON line; ``where`` names it in errors."""
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError(f"{where}: every line needs a non-empty 'prompt' string")
    weak = _score(data, "weak")
    strong = _score(data, "strong")
    label = _number(data.get("label"), f"{where}: label")
    if (weak is None or strong is None) and label is None:
        raise ConfigError(
            f"{where}: needs weak_score and strong_score, weak_correct and strong_correct, or label "
            "(1 when the strong model was needed)"
        )
    family = next((str(data[f]) for f in _FAMILY_FIELDS if data.get(f)), DEFAULT_FAMILY)
    response = data.get("weak_response")
    return RoutingExample(
        prompt, weak, strong, family, response if isinstance(response, str) else None, label
    )


def load_examples(path: str | Path) -> list[RoutingExample]:
    """Every example of a JSON-lines file (blank lines skipped)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"routing data file not found: {file}")
    # Not ``splitlines()``: it also splits at U+2028 and friends, which JSON strings may hold verbatim.
    return list(parse_lines(file.read_text(encoding="utf-8").split("\n"), str(file)))


def shipped_examples() -> list[RoutingExample]:
    """The examples the packaged router was trained on (the dev split's MMLU, GSM8K and MT-Bench)."""
    try:
        packed = resources.files("model_orchestrator.routing").joinpath(SHIPPED_DATA).read_bytes()
        text = gzip.decompress(packed).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"the package's routing data ({SHIPPED_DATA}) is missing or damaged: reinstall model-orchestrator"
        ) from exc
    return list(parse_lines(text.split("\n"), f"package:{SHIPPED_DATA}"))


def parse_lines(lines: Iterable[str], source: str) -> Iterable[RoutingExample]:
    """Examples from JSON lines; errors name ``source`` and the line number."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{source}:{number}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{source}:{number}: each line must be a JSON object")
        yield example_from(data, f"{source}:{number}")


def families(examples: Iterable[RoutingExample]) -> list[str]:
    """The families present, in first-seen order."""
    return list(dict.fromkeys(e.family for e in examples))


def _score(data: Mapping[str, object], who: str) -> float | None:
    score = _number(data.get(f"{who}_score"), f"{who}_score")
    if score is not None:
        return score
    correct = data.get(f"{who}_correct")
    return float(correct) if isinstance(correct, bool) else None


def _number(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    raise ConfigError(f"{what} must be a number, not {value!r}")
