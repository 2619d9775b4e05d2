"""Finding and reading ``orchestrator.yaml``. Owns the search order and readable errors; not building models.

Search order: an explicit path, then ``$ORCHESTRATOR_CONFIG``, then ``./orchestrator.yaml`` (or ``.yml``).
No file anywhere is fine: the defaults (embedded model plus keyed catalogue models) apply.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from model_orchestrator.config.schema import OrchestratorConfig
from model_orchestrator.core.errors import ConfigError

CONFIG_ENV = "ORCHESTRATOR_CONFIG"
_DEFAULT_NAMES = ("orchestrator.yaml", "orchestrator.yml")
_SECRET_WORDS = ("key", "token", "secret", "password", "headers", "endpoint")


def find_config(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    """The config file to use, or None when there is none. An explicitly named file must exist."""
    if explicit is not None:
        return _must_exist(Path(explicit), "--config")
    if env.get(CONFIG_ENV):
        return _must_exist(Path(env[CONFIG_ENV]), f"${CONFIG_ENV}")
    for name in _DEFAULT_NAMES:
        candidate = Path.cwd() / name
        if candidate.is_file():
            return candidate
    return None


def _must_exist(path: Path, via: str) -> Path:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} (from {via}) does not exist or is not a file")
    return path


def load_config(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[OrchestratorConfig, Path | None]:
    """The validated config and the file it came from (None when defaults apply)."""
    path = find_config(explicit, os.environ if env is None else env)
    if path is None:
        return OrchestratorConfig(), None
    return parse_config(path.read_text(encoding="utf-8"), source=str(path)), path


def parse_config(text: str, *, source: str = "<config>") -> OrchestratorConfig:
    """Validate YAML text; errors name the source, the key path and what was expected."""
    import yaml
    from pydantic import ValidationError

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level (models:, strategies:, budgets:)")
    try:
        return OrchestratorConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(source, exc, data)) from exc


def _describe(source: str, exc: object, data: object) -> str:
    from pydantic import ValidationError

    assert isinstance(exc, ValidationError)
    lines = [f"{source}: {exc.error_count()} problem(s) in the config:"]
    for err in exc.errors(include_url=False):
        path = _key_path(err["loc"], data)
        got = "" if err["type"] == "missing" or _may_be_secret(err["loc"]) else f" (got {err['input']!r})"
        lines.append(f"  {path}: {err['msg']}{got}")
    return "\n".join(lines)


def _may_be_secret(loc: tuple[int | str, ...]) -> bool:
    """Never echo a value that may be a key someone pasted into the file."""
    return any(isinstance(i, str) and any(w in i.lower() for w in _SECRET_WORDS) for i in loc)


def _key_path(loc: tuple[int | str, ...], data: object) -> str:
    """``models[1].price.input``, with the model's name when it has one: ``models[1] (fast).price``."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            parts[-1] += f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                parts[-1] += f" ({node['name']})"
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "<top level>"
