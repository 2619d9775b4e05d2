"""Finding and reading ``orchestrator.yaml``. Owns the search order and readable errors; not building models.

Search order: an explicit path, then ``$ORCHESTRATOR_CONFIG``, then ``./orchestrator.yaml`` (or ``.yml``).
No file anywhere is fine: the defaults (embedded model plus keyed catalogue models) apply.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from model_orchestrator.config.redaction import excerpt, redact_keys
from model_orchestrator.config.schema import OrchestratorConfig
from model_orchestrator.core.errors import ConfigError

CONFIG_ENV = "ORCHESTRATOR_CONFIG"
_DEFAULT_NAMES = ("orchestrator.yaml", "orchestrator.yml")
_SECRET_WORDS = ("key", "token", "secret", "password", "headers", "endpoint")
_MAX_PROBLEMS = 20
_MAX_MESSAGE = 300
_MAX_KEY = 60


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
    return parse_config(read_config_text(path), source=str(path)), path


def read_config_text(path: Path) -> str:
    """The file's text; an unreadable or non-UTF-8 file is a ConfigError naming it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
            "save it as UTF-8"
        ) from None


def parse_config(text: str, *, source: str = "<config>") -> OrchestratorConfig:
    """Validate YAML text; errors name the source, the key path and what was expected.

    Values quoted in errors are short and redacted (``redaction.excerpt``), and aliases may not expand
    beyond ``safe_yaml.MAX_EXPANDED_NODES``.
    """
    import yaml
    from pydantic import ValidationError

    from model_orchestrator.config.safe_yaml import load_yaml

    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_shorten(redact_keys(str(exc)))}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level (models:, strategies:, budgets:)")
    try:
        return OrchestratorConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(source, exc, data)) from None
    except RecursionError:
        raise ConfigError(f"{source}: the config is nested too deeply") from None


def _describe(source: str, exc: object, data: object) -> str:
    from pydantic import ValidationError

    assert isinstance(exc, ValidationError)
    lines = [f"{source}: {exc.error_count()} problem(s) in the config:"]
    errors = exc.errors(include_url=False, include_input=True)
    for err in errors[:_MAX_PROBLEMS]:
        path = _key_path(err["loc"], data)
        quiet = not err["loc"] or err["type"] == "missing" or _may_be_secret(err["loc"])
        got = "" if quiet else f" (got {excerpt(err['input'])})"
        lines.append(f"  {path}: {_shorten(redact_keys(err['msg']))}{got}")
    if len(errors) > _MAX_PROBLEMS:
        lines.append(f"  ... and {len(errors) - _MAX_PROBLEMS} more")
    return "\n".join(lines)


def _shorten(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
                parts[-1] += f" ({_shorten(redact_keys(node['name']), _MAX_KEY)})"
        else:
            parts.append(_shorten(redact_keys(str(item)), _MAX_KEY))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "<top level>"
